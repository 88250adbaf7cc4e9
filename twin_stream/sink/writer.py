"""The sink loop: Kafka -> batches -> InfluxDB, offsets committed only after a write succeeded.

influxdb-client's batching mode can lose data at shutdown (influxdb-client-python #198, #504),
so the sink batches itself and writes synchronously. A failed write is retried with backoff,
on the same batch, while the consumer is paused (it keeps its group membership by polling
nothing): the sink does not move on while InfluxDB is down, and nothing is committed that was
not written. A restart replays from the last commit; rewrites land on the same points.

InfluxDB's errors are translated where it is called (:func:`write_points`): a write that did not
land is a :class:`~twin_stream.errors.StoreError`. It is retried while the sink runs; when the
sink is stopped during an outage, the batch's StoreError propagates (not written, not
committed). While Kafka is away the sink waits for it (polls and commits are tried again with
backoff; what was read stays in the batch), so an outage delays points and never ends the sink.
A record that cannot be turned into points is not skipped: it goes to the
dead-letter topic with the reason (rule ``unwritable``), confirmed by Kafka before its offset can
be committed, where ``twin-stream dlq`` shows and replays it (and from where this sink writes it
as a ``dead_letter`` point). A record on the dead-letter topic itself that cannot be written, or
any such record of a sink given no producer, is written as a ``dead_letter`` point in the same
batch instead, so it is committed only once that point is written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import urllib3.exceptions
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from kafka import KafkaConsumer, KafkaProducer
from kafka import errors as kafka_errors

from twin_stream.bridge.routing import dead_letter
from twin_stream.errors import PayloadRejected, StoreError, TwinStreamError, map_exceptions
from twin_stream.kafka import KAFKA_ERRORS, is_transient
from twin_stream.redaction import redactor
from twin_stream.sink.points import dead_letter_point, to_points

__all__ = ["STORE_ERRORS", "InfluxTarget", "Sink", "SinkStats", "write_points"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InfluxTarget:
    url: str
    token: str
    org: str
    bucket: str


#: What influxdb-client raises for a write that did not land: InfluxDB's answer (ApiException,
#: an InfluxDBError) or none (urllib3's errors: refused, timed out, connection dropped).
STORE_ERRORS: Final[Mapping[type[BaseException], type[TwinStreamError]]] = {
    InfluxDBError: StoreError,
    urllib3.exceptions.HTTPError: StoreError,
    OSError: StoreError,
}


def write_points(write_api: Any, target: InfluxTarget, points: list[Point]) -> None:
    """Write ``points`` to ``target``'s bucket synchronously; StoreError if they did not land."""
    precision: Any = WritePrecision.MS  # a str enum its stubs do not know; points carry their own
    with map_exceptions(STORE_ERRORS, f"influxdb {target.url} (bucket {target.bucket})"):
        write_api.write(bucket=target.bucket, record=points, write_precision=precision)


@dataclass
class SinkStats:
    records: int = 0
    points: int = 0
    batches: int = 0
    write_failures: int = 0
    bad_records: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Sink:
    """Consume the platform's topics and write them as points."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        target: InfluxTarget,
        kind_of_topic: dict[str, str],
        *,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        max_backoff_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        letters: KafkaProducer | None = None,
        dlq_topic: str | None = None,
    ) -> None:
        self.consumer = consumer
        self.target = target
        self.kind_of_topic = kind_of_topic
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep
        self.stats = SinkStats()
        self.letters = letters  # sends what cannot be written to ``dlq_topic``
        self._stopping = threading.Event()  # run()'s stop
        self.dlq_topic = dlq_topic
        self.client = InfluxDBClient(
            url=target.url, token=target.token, org=target.org, timeout=10_000
        )
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def run(self, stop: threading.Event) -> SinkStats:
        """Consume and write until ``stop`` is set; then close the consumer and the client.

        Raises :class:`StoreError` if stopped while InfluxDB refuses the last batch, and
        :class:`~twin_stream.errors.KafkaError` if Kafka fails the consumer."""
        self._stopping = stop
        try:
            with map_exceptions(KAFKA_ERRORS, "kafka: the sink's consumer"):
                self._run(stop)
        finally:
            self.consumer.close()
            self.client.close()
            if self.letters is not None:
                self.letters.close()
        return self.stats

    def _run(self, stop: threading.Event) -> None:
        batch: list[Point] = []
        started = time.monotonic()
        backoff = 0.2
        while not stop.is_set():
            try:
                polled = self.consumer.poll(timeout_ms=200, max_records=self.batch_size)
            except kafka_errors.KafkaError as e:
                if not is_transient(e):
                    raise
                # Kafka is away: what was read is kept, nothing is committed; wait for it.
                log.warning("kafka unreachable (%s); polling again in %.1fs", e, backoff)
                self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            backoff = 0.2
            for tp, records in polled.items():
                kind = self.kind_of_topic[tp.topic]
                for record in records:
                    self.stats.records += 1
                    try:
                        batch.extend(to_points(kind, record.value))
                    except PayloadRejected as rejected:
                        self.stats.bad_records += 1
                        where = "sent to the dead-letter topic"
                        # what identifies a person, taken out of what is kept and logged
                        reason = redactor().text(rejected.reason)
                        if self.letters is not None and tp.topic != self.dlq_topic:
                            reason = self._send_letter(tp.topic, record, rejected.reason)
                        else:
                            batch.append(_dead_letter(tp.topic, record, reason))
                            where = "written as a dead letter"
                        log.error(
                            "record %s[%d]@%d %s: %s",
                            tp.topic,
                            tp.partition,
                            record.offset,
                            where,
                            reason,
                        )
            full = len(batch) >= self.batch_size
            due = time.monotonic() - started >= self.flush_interval_s
            if batch and (full or due):
                self._write_then_commit(batch, stop)
                batch, started = [], time.monotonic()
            elif not batch and due:
                started = time.monotonic()
        if batch:
            self._write_then_commit(batch, stop)

    def _write_then_commit(self, batch: list[Point], stop: threading.Event) -> None:
        backoff = 0.2
        paused = False
        while True:
            try:
                write_points(self.write_api, self.target, batch)
                break
            except StoreError as e:
                self.stats.write_failures += 1
                log.warning(
                    "write of %d points failed (%s); retrying in %.1fs",
                    len(batch),
                    e,
                    backoff,
                )
                if stop.is_set():
                    raise  # not written, not committed: the next start replays it
                if not paused:
                    self.consumer.pause(*self.consumer.assignment())
                    paused = True
                self.consumer.poll(timeout_ms=0)  # keeps the group membership alive
                self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        if paused:
            self.consumer.resume(*self.consumer.paused())
        try:
            self.consumer.commit()
        except kafka_errors.CommitFailedError as e:  # the group rebalanced meanwhile
            # Written but not committed: the partitions' new owner writes these records
            # again, onto the same points.
            log.warning("commit after writing %d points failed: %s", len(batch), e)
        except kafka_errors.KafkaError as e:
            if not is_transient(e):
                raise
            # Kafka is away: the next commit covers these records too; a restart before it
            # writes them again, onto the same points.
            log.warning("commit after writing %d points failed (kafka away): %s", len(batch), e)
        self.stats.points += len(batch)
        self.stats.batches += 1

    def _send_letter(self, topic: str, record: Any, reason: str) -> str:
        """Send a record the sink cannot write to the dead-letter topic; return once Kafka has
        it (before the record's offset can be committed), with the letter's redacted reason."""
        assert self.letters is not None and self.dlq_topic is not None
        device = record.key.decode(errors="replace") if record.key else None
        letter = dead_letter(
            topic, record.value, reason, datetime.now(UTC), device, {"dlq": self.dlq_topic}
        )
        backoff = 0.2
        while True:
            try:
                sent = self.letters.send(letter.kafka_topic, key=letter.key, value=letter.value)
                sent.get(30)
                return letter.reason or reason
            except kafka_errors.KafkaError as e:
                if not is_transient(e) or self._stopping.is_set():
                    raise  # stopped: not committed, the next start reads the record again
                log.warning("dead letter not confirmed (%s); sending again in %.1fs", e, backoff)
                self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)


def _dead_letter(topic: str, record: Any, reason: str) -> Point:
    """The dead-letter point of a record the sink cannot write, at the record's Kafka time
    (plus its offset's last three digits as microseconds: letters of one millisecond stay
    apart, and the same record replayed lands on itself)."""
    at_ms = record.timestamp if record.timestamp and record.timestamp > 0 else time.time() * 1000
    key = record.key.decode(errors="replace") if record.key else None
    return dead_letter_point(reason, key, topic, int(at_ms) * 1000 + record.offset % 1000)
