"""The dead-letter topic, for people: list and show what was set aside and why, and replay
chosen letters to their original topic once the cause is fixed (``twin-stream dlq``).

Every component that cannot process a message or record writes it to ``twin.dlq`` with where it
came from, why, when, and its bytes (:class:`~twin_stream.domain.records.DeadLetter`). Replaying
a letter sends its bytes on again, through the same gate they failed at:

* a message a device published over MQTT (its ``mqtt_topic`` is a device topic) is routed again
  by the bridge's own code (:func:`~twin_stream.bridge.routing.route`), judged at the time the
  bridge received it (so an old reading is not refused for its age). Still invalid, it is not
  sent and stays on the topic, with the reason it still fails;
* a record a worker or the sink could not process (its ``mqtt_topic`` names a Kafka topic of
  ours) is produced again, the same bytes and key, to that topic;
* a letter with neither (a message on a topic that is no device's) has nowhere to go;
* a redacted letter (one that held what identifies a person, :mod:`twin_stream.domain.privacy`)
  is never replayed: its payload is no longer the message, and the message is kept nowhere.

The topic is append-only: a replayed letter stays on it, and replaying it again sends it again
(the worker de-duplicates readings by seq; use ``--dry-run`` first).

>>> from datetime import datetime, timezone
>>> at = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> raw = (b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":7,'
...        b'"ts":"2026-11-24T11:59:59Z","fw":"2.4.1","metrics":{"motor_current":0.31}}')
>>> from twin_stream.bridge.routing import dead_letter
>>> record = dead_letter("twin/v1/devices/pump-0001/telemetry", raw, "why [rule]", at, "pump-0001")
>>> letter = Letter.decode(0, 42, record.key, record.value)
>>> letter.id, letter.rule, replay_target(letter).kafka_topic
('0:42', 'rule', 'twin.telemetry')
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from twin_stream.bridge.routing import Routed, route
from twin_stream.domain.records import DeadLetter
from twin_stream.domain.topics import KAFKA_TOPICS, MQTT_PREFIX
from twin_stream.errors import ConfigError, map_exceptions
from twin_stream.kafka import KAFKA_ERRORS, make_producer, make_reader, read_to_end

__all__ = [
    "Letter",
    "LetterFilter",
    "ReplayOutcome",
    "read_letters",
    "replay",
    "replay_target",
]

_RULE = re.compile(r"\[([^\[\]]+)\]\s*$")


@dataclass(frozen=True)
class Letter:
    """One record of the dead-letter topic, where it is (partition and offset) and what."""

    partition: int
    offset: int
    key: bytes | None
    letter: DeadLetter

    @property
    def id(self) -> str:
        """``partition:offset``, what ``dlq show`` and ``dlq replay --id`` take."""
        return f"{self.partition}:{self.offset}"

    @property
    def rule(self) -> str:
        """The rule the reason ends with (``out_of_range``, ``processing_failed``...)."""
        match = _RULE.search(self.letter.reason)
        return match.group(1) if match else ""

    @property
    def payload(self) -> bytes:
        return base64.b64decode(self.letter.payload_base64)

    @classmethod
    def decode(cls, partition: int, offset: int, key: bytes | None, value: bytes) -> Letter:
        """A letter from its record; :class:`ValueError` for a record that is no letter."""
        return cls(partition, offset, key, DeadLetter.model_validate_json(value))


@dataclass(frozen=True)
class LetterFilter:
    """Which letters a command is about: all of them by default."""

    device: str | None = None
    #: a substring of the reason, or its rule exactly
    reason: str | None = None
    since: datetime | None = None
    ids: frozenset[str] = frozenset()

    def __call__(self, letter: Letter) -> bool:
        if self.ids and letter.id not in self.ids:
            return False
        if self.device is not None and letter.letter.device_id != self.device:
            return False
        if self.reason is not None and not (
            self.reason == letter.rule or self.reason in letter.letter.reason
        ):
            return False
        return self.since is None or letter.letter.received_at >= self.since


def replay_target(letter: Letter, topics: Mapping[str, str] = KAFKA_TOPICS) -> Routed:
    """Where a letter's bytes go when it is replayed. A :class:`Routed` with a ``reason`` is a
    letter that cannot go anywhere yet: still invalid, redacted, or from no topic of ours."""
    source = letter.letter.mqtt_topic
    if letter.letter.redacted:
        # Its bytes are no longer the message (the identifiers are hashes): sent on, they
        # would be a different message, and the original is kept nowhere.
        return Routed(
            topics["dlq"],
            letter.key,
            letter.payload,
            f"redacted ({', '.join(letter.letter.redacted)}): the original payload is not kept",
        )
    if source.startswith(MQTT_PREFIX + "/"):
        # The bridge's gate, as of when the bridge received it.
        return route(source, letter.payload, now=letter.letter.received_at, topics=dict(topics))
    if source in topics.values() and source != topics["dlq"]:
        return Routed(source, letter.key, letter.payload)
    return Routed(
        topics["dlq"], letter.key, letter.payload, f"no topic of ours to replay to: {source}"
    )


def read_letters(
    bootstrap: str,
    options: dict[str, object],
    wanted: LetterFilter = LetterFilter(),
    *,
    topic: str = KAFKA_TOPICS["dlq"],
) -> Iterator[Letter | tuple[int, int, str]]:
    """The letters on ``topic`` that ``wanted`` selects, oldest first per partition, up to the
    end the topic had when reading began. A record that is no letter comes out as
    ``(partition, offset, why)``: it is shown, never skipped silently."""
    reader = make_reader(bootstrap, options)
    try:
        with map_exceptions(KAFKA_ERRORS, f"kafka {bootstrap}: reading {topic}"):
            partitions = reader.partitions_for_topic(topic)
            if partitions is None:
                raise ConfigError(f"kafka {bootstrap}: no topic {topic}")
            for partition, record in read_to_end(reader, topic, sorted(partitions), wanted.since):
                try:
                    letter = Letter.decode(partition, record.offset, record.key, record.value)
                except (ValidationError, ValueError) as e:
                    yield (partition, record.offset, _one_line(e))
                    continue
                if wanted(letter):
                    yield letter
    finally:
        reader.close()


@dataclass(frozen=True)
class ReplayOutcome:
    """What replaying one letter did: sent to ``topic``, or not, and why."""

    letter: Letter
    topic: str
    sent: bool
    reason: str | None = None


def replay(
    bootstrap: str,
    options: dict[str, object],
    letters: list[Letter],
    *,
    dry_run: bool = False,
    topics: Mapping[str, str] = KAFKA_TOPICS,
) -> list[ReplayOutcome]:
    """Send each letter's bytes to its original topic (see the module's docstring); with
    ``dry_run``, only say where each would go. Every record is confirmed by Kafka before this
    returns."""
    plans = [(letter, replay_target(letter, topics)) for letter in letters]
    outcomes = [
        ReplayOutcome(letter, target.kafka_topic, False, target.reason)
        if target.reason is not None or dry_run
        else ReplayOutcome(letter, target.kafka_topic, True)
        for letter, target in plans
    ]
    if dry_run or not any(o.sent for o in outcomes):
        return outcomes
    producer: Any = make_producer(bootstrap, options)
    try:
        with map_exceptions(KAFKA_ERRORS, f"kafka {bootstrap}: replaying dead letters"):
            futures = [
                producer.send(target.kafka_topic, key=target.key, value=target.value)
                for (_, target), outcome in zip(plans, outcomes, strict=True)
                if outcome.sent
            ]
            producer.flush()
            for future in futures:
                future.get(timeout=30)
    finally:
        producer.close()
    return outcomes


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]
