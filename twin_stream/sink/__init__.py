"""The InfluxDB sink: ``points`` (records -> points) and ``writer`` (the commit-after-write loop).

:func:`make_sink` wires a Kafka consumer of the platform's topics to an InfluxDB target.
"""

from __future__ import annotations

from kafka import KafkaConsumer

from twin_stream.domain.topics import KAFKA_TOPICS
from twin_stream.sink.points import MEASUREMENTS
from twin_stream.sink.writer import InfluxTarget, Sink, SinkStats

__all__ = ["InfluxTarget", "Sink", "SinkStats", "make_sink"]


def make_sink(
    bootstrap: str,
    target: InfluxTarget,
    *,
    group_id: str = "twin-sink",
    topics: dict[str, str] = KAFKA_TOPICS,
    kafka_options: dict[str, object] | None = None,
    batch_size: int = 5000,
    flush_interval_s: float = 1.0,
) -> Sink:
    kind_of_topic = {topics[kind]: kind for kind in MEASUREMENTS}
    consumer = KafkaConsumer(
        *kind_of_topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(kafka_options or {}),
    )
    return Sink(
        consumer, target, kind_of_topic, batch_size=batch_size, flush_interval_s=flush_interval_s
    )
