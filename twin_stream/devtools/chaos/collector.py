"""What the platform produced during a chaos run, read live from Kafka by one thread.

The collector reads ``twin.scores``, ``twin.alerts`` and ``twin.telemetry`` from their start
(no consumer group, nothing committed) for the whole run, through every fault: a Kafka outage
only pauses it (kafka-python reconnects). It keeps, per device, every score's ``seq_last`` with
when it arrived (the recovery clock), every alert event, and how many telemetry records each
reading has on Kafka (the bridge's redeliveries).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import confluent_kafka
import orjson

from twin_stream.devtools.chaos.counting import AlertEvent
from twin_stream.domain.batches import decode_scores

__all__ = ["Collector"]

log = logging.getLogger(__name__)


class Collector:
    """Reads the run's scores, alerts and telemetry until :meth:`stop`; thread-safe reads."""

    def __init__(self, bootstrap: str, topics: dict[str, str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.lock = threading.Lock()
        self._scores: dict[str, list[tuple[float, int]]] = {}
        self._alerts: list[AlertEvent] = []
        self._relayed: Counter[tuple[str, int]] = Counter()
        self.undecodable = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-collector")
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- reads (any thread) ---------------------------------------------------------------------

    def scores(self) -> dict[str, list[tuple[float, int]]]:
        """Per device, ``(arrival, seq_last)`` of every score so far, in arrival order."""
        with self.lock:
            return {device: list(s) for device, s in self._scores.items()}

    def scored_counts(self) -> Counter[tuple[str, int]]:
        """How many scores each reading (device, seq) got."""
        counts: Counter[tuple[str, int]] = Counter()
        with self.lock:
            for device, scores in self._scores.items():
                counts.update((device, seq) for _, seq in scores)
        return counts

    def alerts(self) -> list[AlertEvent]:
        with self.lock:
            return list(self._alerts)

    def relayed(self) -> Counter[tuple[str, int]]:
        """How many telemetry records each reading has on Kafka."""
        with self.lock:
            return Counter(self._relayed)

    def last_alert_at(self) -> float:
        with self.lock:
            return self._alerts[-1].arrived if self._alerts else 0.0

    # -- the reading thread ---------------------------------------------------------------------

    def _run(self) -> None:
        # librdkafka (confluent-kafka), not kafka-python: through a Kafka outage kafka-python
        # 3.0 drops the socket of every refused reconnect unclosed (kafka/net/inet.py).
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "twin-chaos-collector",  # required; partitions are assigned here
                "enable.auto.commit": False,
                # An outage is what the run is about: librdkafka reconnects by itself, and its
                # errors (and its log lines below critical) are only worth a debug line here.
                "error_cb": _quiet,
                "logger": log,
                "log_level": 2,
            }
        )
        try:
            wanted = [self.topics[k] for k in ("scores", "alerts", "telemetry")]
            metadata = consumer.list_topics(timeout=30)
            consumer.assign(
                [
                    confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                    for topic in wanted
                    for p in metadata.topics[topic].partitions
                ]
            )
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=2000, timeout=0.2)
                arrived = time.time()
                self._take([m for m in messages if m.error() is None], arrived)
        except Exception as e:  # the run sees it (``error``) and stops with it
            self.error = e
        finally:
            consumer.close()

    def _take(self, records: list[Any], arrived: float) -> None:
        topics = self.topics
        scores, alerts, telemetry = topics["scores"], topics["alerts"], topics["telemetry"]
        with self.lock:
            for record in records:
                topic, value = record.topic(), record.value()
                try:
                    if topic == scores:
                        for score in decode_scores(value):
                            device = str(score["device_id"])
                            self._scores.setdefault(device, []).append(
                                (arrived, int(score["seq_last"]))
                            )
                    elif topic == alerts:
                        self._alerts.append(AlertEvent(arrived, orjson.loads(value)))
                    elif topic == telemetry:
                        reading = orjson.loads(value)
                        self._relayed[str(reading["device_id"]), int(reading["seq"])] += 1
                except (ValueError, KeyError, TypeError):
                    self.undecodable += 1


def _quiet(error: confluent_kafka.KafkaError) -> None:
    log.debug("collector: %s", error)
