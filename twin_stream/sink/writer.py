"""The sink loop: Kafka -> batches -> InfluxDB, offsets committed only after a write succeeded.

influxdb-client's batching mode can lose data at shutdown (influxdb-client-python #198, #504),
so the sink batches itself and writes synchronously. A failed write is retried with backoff,
on the same batch, while the consumer is paused (it keeps its group membership by polling
nothing): the sink does not move on while InfluxDB is down, and nothing is committed that was
not written. A restart replays from the last commit; rewrites land on the same points.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from kafka import KafkaConsumer

from twin_stream.sink.points import to_points

__all__ = ["InfluxTarget", "Sink", "SinkStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InfluxTarget:
    url: str
    token: str
    org: str
    bucket: str


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
    ) -> None:
        self.consumer = consumer
        self.target = target
        self.kind_of_topic = kind_of_topic
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep
        self.stats = SinkStats()
        self.client = InfluxDBClient(
            url=target.url, token=target.token, org=target.org, timeout=10_000
        )
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def run(self, stop: threading.Event) -> SinkStats:
        batch: list[Point] = []
        started = time.monotonic()
        try:
            while not stop.is_set():
                for tp, records in self.consumer.poll(
                    timeout_ms=200, max_records=self.batch_size
                ).items():
                    kind = self.kind_of_topic[tp.topic]
                    for record in records:
                        self.stats.records += 1
                        try:
                            batch.extend(to_points(kind, record.value))
                        except ValueError as e:
                            self.stats.bad_records += 1
                            log.error(
                                "skipping record %s[%d]@%d: %s",
                                tp.topic,
                                tp.partition,
                                record.offset,
                                e,
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
        finally:
            self.client.close()
        return self.stats

    def _write_then_commit(self, batch: list[Point], stop: threading.Event) -> None:
        backoff = 0.2
        paused = False
        while True:
            try:
                precision: Any = WritePrecision.MS  # a str enum its stubs do not know
                self.write_api.write(
                    bucket=self.target.bucket, record=batch, write_precision=precision
                )
                break
            except Exception as e:  # influxdb-client raises urllib3 and ApiException errors
                self.stats.write_failures += 1
                log.warning(
                    "write of %d points failed (%s); retrying in %.1fs",
                    len(batch),
                    type(e).__name__,
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
        self.consumer.commit()
        self.stats.points += len(batch)
        self.stats.batches += 1
