"""What the demo shows: everything the platform produces, read back from Kafka.

One consumer (no group, from the start) follows telemetry, scores, predictions, alerts and
twins, and keeps what the live view and the report need: per-device series (capped), the
latest score and prediction of each device, open alerts, twins, and the publish-to-score
latency of every reading (broker time of its score minus the reading's device time).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from kafka import KafkaConsumer

from twin_stream.domain.batches import decode_scores

__all__ = ["Observer", "Snapshot"]

#: Points kept per device and series: enough for a demo, bounded for a long run.
MAX_POINTS = 20_000


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@dataclass
class Snapshot:
    """Counters at one moment, for rates."""

    at: float
    counts: dict[str, int]


@dataclass
class Observer:
    bootstrap: str
    topics: dict[str, str]
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    telemetry: dict[str, deque[tuple[float, dict[str, float]]]] = field(
        default_factory=lambda: defaultdict(lambda: deque(maxlen=MAX_POINTS))
    )
    scores: dict[str, deque[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(lambda: deque(maxlen=MAX_POINTS))
    )
    predictions: dict[str, deque[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(lambda: deque(maxlen=MAX_POINTS))
    )
    #: (ts, health index) per device, once its healthy reference is learned
    health: dict[str, deque[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(lambda: deque(maxlen=MAX_POINTS))
    )
    alerts: list[dict[str, Any]] = field(default_factory=list)
    open_alerts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    twins: dict[str, dict[str, Any]] = field(default_factory=dict)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    history: deque[Snapshot] = field(default_factory=lambda: deque(maxlen=600))
    lock: threading.RLock = field(default_factory=threading.RLock)

    def run(self, stop: threading.Event) -> None:
        """Follow the topics until ``stop`` is set (run it in a thread)."""
        kind_of = {
            self.topics[k]: k for k in ("telemetry", "scores", "predictions", "alerts", "twins")
        }
        consumer = KafkaConsumer(
            *kind_of,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    with self.lock:
                        for record in records:
                            self._take(kind_of[record.topic], record.value, record.timestamp)
        finally:
            consumer.close()

    def _take(self, kind: str, value: bytes, broker_ms: int) -> None:
        if kind == "scores":  # a batch of one device's scores (or one score)
            for score in decode_scores(value):
                self.counts[kind] += 1
                ts = _ts(score["ts"])
                self.scores[score["device_id"]].append((ts, float(score["score"])))
                if score.get("health") is not None:
                    self.health[score["device_id"]].append((ts, float(score["health"])))
                self.latencies_ms.append(broker_ms - ts * 1000.0)
            return
        body = orjson.loads(value)
        self.counts[kind] += 1
        device = body.get("device_id", "")
        if kind == "telemetry":
            metrics = {k: v for k, v in body["metrics"].items() if v is not None}
            self.telemetry[device].append((_ts(body["ts"]), metrics))
        elif kind == "predictions":
            self.predictions[device].append(body)
        elif kind == "alerts":
            self.alerts.append(body)
            # One entry per alert: its latest event ("updated" changes its severity or text).
            key = (device, str(body.get("alert_id") or body["kind"]))
            if body["state"] == "resolved":
                self.open_alerts.pop(key, None)
            else:
                self.open_alerts[key] = body
        elif kind == "twins":
            self.twins[device] = body

    def snapshot(self, extra: dict[str, int]) -> None:
        """Record the counters now (plus counts from outside Kafka) for :meth:`rates`."""
        with self.lock:
            self.history.append(Snapshot(time.monotonic(), {**self.counts, **extra}))

    def rates(self, window_s: float = 5.0) -> dict[str, float]:
        """Messages per second of each counter over the last ``window_s`` seconds."""
        with self.lock:
            if len(self.history) < 2:
                return {}
            last = self.history[-1]
            first = next((s for s in self.history if last.at - s.at <= window_s), self.history[0])
            span = last.at - first.at
            if span <= 0:
                return {}
            return {k: (v - first.counts.get(k, 0)) / span for k, v in last.counts.items()}

    def latest_predictions(self) -> list[dict[str, Any]]:
        """Each device's and signal's latest prediction that has a time to failure."""
        with self.lock:
            latest: dict[tuple[str, str], dict[str, Any]] = {}
            for device, items in self.predictions.items():
                for p in items:
                    latest[(device, p["metric"])] = p
        return sorted(
            (p for p in latest.values() if p.get("time_to_failure_h") is not None),
            key=lambda p: float(p["time_to_failure_h"]),
        )
