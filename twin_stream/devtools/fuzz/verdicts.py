"""The counting of verdicts: every message a run sent (:class:`Sent`) against what the bridge
wrote to Kafka, read back from the start, by the bytes:

- every probe the bridge owes a dead letter is in one, with a reason that ends with a rule
  (one of those the probe's defect breaks, where that is known), keyed by its device;
- every probe the broker owes a refusal got it (PUBACK "Not authorized") and reached Kafka
  nowhere, neither dead-lettered nor forwarded;
- every valid reading arrived on the telemetry topic once, in its device's order, exactly as
  the bridge's validation forwards it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from kafka import KafkaConsumer, TopicPartition

from twin_stream.bridge.routing import MAX_LETTER_PAYLOAD_BYTES, route
from twin_stream.devtools.fuzz.client import (
    NO_SUBSCRIBERS,
    NOT_AUTHORIZED,
    SUCCESS,
    DeviceClient,
)
from twin_stream.devtools.fuzz.probe import Probe
from twin_stream.devtools.fuzz.processes import Watched
from twin_stream.devtools.fuzz.report import FuzzReport
from twin_stream.domain.privacy import Redactor

__all__ = ["Sent", "count"]

#: The rule a reason ends with (as the sink reads it).
_RULE: Final = re.compile(r"\[([a-z_]+)\]$")
_TOKEN: Final = re.compile(rb"redacted:[0-9a-f]{32}")
#: Redacts a probe as the bridge will (the tokens differ, the bytes around them do not).
_REDACTOR: Final = Redactor(b"fuzz-verdicts-only-matching")
#: A cut letter's reason: "(the letter keeps ...)" past 64 KiB, "(no JSON: the letter keeps
#: ...)" for a payload that is no JSON past 1 KiB (twin_stream.domain.privacy).
_KEPT: Final = re.compile(r"the letter keeps its first (\d+) of (\d+) bytes\)")


@dataclass
class Sent:
    """One message sent: what it was, on which connection, its mid."""

    client: DeviceClient | None  # None: sent on a connection of its own (over the limit)
    mid: int
    probe: Probe | None = None  # None: a valid reading
    device_id: str = ""
    seq: int = -1
    expected: bytes = b""  # a valid reading as the bridge forwards it
    #: Over the broker's packet limit: the reason code it closed the connection with, if it did.
    dropped: int | None = None

    def code(self) -> int | None:
        """The broker's PUBACK reason code, if it answered."""
        return None if self.client is None else self.client.acks.get(self.mid)


def _expected_on_kafka(
    probe: Probe, now: datetime, topics: dict[str, str]
) -> tuple[str, bytes] | None:
    """Where and how a refused probe would show on Kafka had the broker let it through."""
    routed = route(probe.topic, probe.payload, now=now, topics=topics)
    return None if routed.reason is not None else (routed.kafka_topic, routed.value)


def _read(
    bootstrap: str,
    topics: Sequence[str],
    enough: Callable[[dict[str, list[Any]]], bool],
    timeout_s: float,
    services: Sequence[Watched],
) -> dict[str, list[Any]]:
    """Every record of ``topics`` from the start, until ``enough`` (and 2 s more, to see
    duplicates), nothing new for ``timeout_s``, or a watched service died."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    records: dict[str, list[Any]] = {t: [] for t in topics}
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        last_new = time.monotonic()
        extra_until: float | None = None
        while True:
            now = time.monotonic()
            if extra_until is None and enough(records):
                extra_until = now + 2.0
            if extra_until is not None and now > extra_until:
                break
            if now - last_new > timeout_s or not all(s.alive() for s in services):
                break
            for partition, batch in consumer.poll(timeout_ms=300).items():
                records[partition.topic].extend(batch)
                last_new = time.monotonic()
    finally:
        consumer.close()
    return records


def count(
    sent: list[Sent],
    bootstrap: str,
    topics: dict[str, str],
    report: FuzzReport,
    services: Sequence[Watched],
    timeout_s: float,
) -> None:
    """Read back the dead-letter topic and the topics the bridge writes (see the module's doc)
    and count into ``report`` what became of each of ``sent``."""
    now = datetime.now(UTC)
    valid = [s for s in sent if s.probe is None]
    owed = [s for s in sent if s.probe is not None and not s.probe.refused and s.client]
    forwarded = [topics[c] for c in ("telemetry", "status", "reported", "ack")]
    started = time.monotonic()
    records = _read(
        bootstrap,
        [*forwarded, topics["dlq"]],
        lambda r: len(r[topics["telemetry"]]) >= len(valid) and len(r[topics["dlq"]]) >= len(owed),
        timeout_s,
        services,
    )
    report.drain_s = round(time.monotonic() - started, 1)
    _count_letters(sent, records[topics["dlq"]], report)
    _count_refused(sent, records, topics, report, now)
    _count_valid(valid, records[topics["telemetry"]], report)


def _letter_key(topic: str, payload: bytes, size: int) -> tuple[str, bytes, int]:
    """What a letter and the probe it answers share: the topic, the bytes the letter keeps
    (all, or the first 64 KiB; each redaction token masked, since the bridge's key is not the
    fuzzer's) and the payload's size (given in a cut letter's reason: two payloads may begin
    with the same 64 KiB)."""
    kept = _TOKEN.sub(b"redacted:", payload[:MAX_LETTER_PAYLOAD_BYTES])
    return topic, hashlib.sha256(kept).digest(), size


def _expected_letter(payload: bytes) -> tuple[bytes, int]:
    """The bytes a letter of ``payload`` keeps once redacted (any key: a token's length is the
    same under every key), and the size its reason gives when it is cut."""
    redacted = _REDACTOR.payload(payload)
    if redacted.payload == payload or redacted.note.startswith("no JSON"):
        return redacted.payload, len(payload)
    return redacted.payload, len(redacted.payload)


def _count_letters(sent: list[Sent], dlq: list[Any], report: FuzzReport) -> None:
    """Each probe the bridge owes a letter against the letters, by topic and bytes."""
    letters: dict[tuple[str, bytes, int], list[dict[str, Any]]] = defaultdict(list)
    for record in dlq:
        letter = orjson.loads(record.value)
        letter["key"] = record.key
        payload = base64.b64decode(letter["payload_base64"])
        cut = _KEPT.search(letter["reason"] or "")
        size = int(cut.group(2)) if cut else len(payload)
        letters[_letter_key(letter["mqtt_topic"], payload, size)].append(letter)
    for item in sent:
        probe = item.probe
        if probe is None:
            continue
        row = report.categories[probe.category]
        kept, size = _expected_letter(probe.payload)
        mine = letters.get(_letter_key(probe.topic, kept, size))
        letter = mine.pop() if mine else None
        code = item.code()
        if probe.refused:
            if letter is not None:
                row["leaked"] += 1
                report.note("refused by the broker, yet dead-lettered", probe.topic)
            continue
        if letter is None:
            if item.dropped is not None:  # over the broker's limit: the sender was dropped
                row["refused"] += 1
            elif code == NOT_AUTHORIZED:
                row["refused"] += 1
                report.note("refused by the broker, owed a dead letter", probe.topic)
            else:
                row["lost"] += 1
                answer = f"PUBACK {code}" if item.client else f"dropped with {item.dropped}"
                report.note(
                    "not dead-lettered",
                    f"{probe.category} {probe.topic} ({answer}, {len(probe.payload)} bytes) "
                    f"{probe.payload[:100]!r}",
                )
            continue
        row["dead_lettered"] += 1
        problem = _letter_problem(probe, letter)
        if problem is not None:
            row["wrong_rule"] += 1
            report.note(f"letter of {probe.category}", problem)
    report.unexpected_letters = sum(len(v) for v in letters.values())


def _letter_problem(probe: Probe, letter: dict[str, Any]) -> str | None:
    """What is wrong with ``probe``'s dead letter, if anything."""
    reason: str = letter["reason"] or ""
    rule = _RULE.search(reason)
    if rule is None:
        return f"no [rule] at the end of {reason!r}"
    if probe.rules and rule.group(1) not in probe.rules:
        return f"rule {rule.group(1)} not in {sorted(probe.rules)}: {reason}"
    if letter["device_id"] != probe.device_id or letter["key"] != probe.device_id.encode():
        return f"keyed by {letter['key']!r}, device {letter['device_id']!r}: {reason}"
    kept, size = _expected_letter(probe.payload)
    cut = size > MAX_LETTER_PAYLOAD_BYTES or len(kept) < size  # 64 KiB, or no JSON past 1 KiB
    if cut != bool(_KEPT.search(reason)):
        return f"a letter of {len(probe.payload)} bytes whose reason says otherwise: {reason}"
    return None


def _count_refused(
    sent: list[Sent],
    records: dict[str, list[Any]],
    topics: dict[str, str],
    report: FuzzReport,
    now: datetime,
) -> None:
    """Each probe the broker owes a refusal: refused (PUBACK), and on no topic the bridge
    writes (where it would be had it been let through: its payload is valid for its topic)."""
    seen = {(topic, r.value) for topic, batch in records.items() for r in batch}
    for item in sent:
        probe = item.probe
        if probe is None or not probe.refused:
            continue
        row = report.categories[probe.category]
        code = item.code()
        where = _expected_on_kafka(probe, now, topics)
        if where is not None and where in seen:
            row["leaked"] += 1
            report.note("refused category forwarded to Kafka", probe.topic)
        elif code == NOT_AUTHORIZED:
            row["refused"] += 1
        else:
            row["leaked"] += 1
            report.note(f"broker answered {code} (not 'Not authorized')", probe.topic)


def _count_valid(valid: list[Sent], telemetry: list[Any], report: FuzzReport) -> None:
    arrived: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    order: dict[str, list[int]] = defaultdict(list)
    for record in telemetry:
        reading = orjson.loads(record.value)
        arrived[reading["device_id"], reading["seq"]].append(record.value)
        order[reading["device_id"]].append(reading["seq"])
        if record.key != reading["device_id"].encode():
            report.note("telemetry keyed by another device", repr(record.key))
    for item in valid:
        if item.code() not in (SUCCESS, NO_SUBSCRIBERS):
            report.valid["not_acked"] += 1
        copies = arrived.get((item.device_id, item.seq), [])
        if not copies:
            report.valid["missing"] += 1
            report.note("valid reading missing", f"{item.device_id} seq {item.seq}")
        elif copies[0] != item.expected:
            report.valid["altered"] += 1
            report.note("valid reading altered", f"{copies[0]!r} != {item.expected!r}")
        else:
            report.valid["arrived"] += 1
        report.valid["duplicates"] += max(0, len(copies) - 1)
    report.valid["out_of_order"] = sum(
        sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a) for seqs in order.values()
    )
