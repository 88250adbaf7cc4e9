"""The InfluxDB sink: ``measurements`` (the one list of names), ``points`` (records -> points)
and ``writer`` (the commit-after-write loop).

:func:`make_sink` wires a Kafka consumer of the platform's topics to an InfluxDB target.
"""

from __future__ import annotations

from twin_stream.kafka import KAFKA_TOPICS, make_consumer, make_producer
from twin_stream.sink.measurements import MEASUREMENT_OF_KIND
from twin_stream.sink.points import MEASUREMENTS, to_points
from twin_stream.sink.writer import InfluxTarget, Sink, SinkStats

__all__ = [
    "MEASUREMENTS",
    "MEASUREMENT_OF_KIND",
    "InfluxTarget",
    "Sink",
    "SinkStats",
    "make_sink",
    "to_points",
]


#: How long the group waits for a sink to call ``poll`` (see :func:`make_sink`).
MAX_POLL_INTERVAL_MS = 60_000


def make_sink(
    bootstrap: str,
    target: InfluxTarget,
    *,
    group_id: str = "twin-sink",
    topics: dict[str, str] = KAFKA_TOPICS,
    kafka_options: dict[str, object] | None = None,
    batch_size: int = 5000,
    flush_interval_s: float = 1.0,
    instance_id: str | None = None,
    session_timeout_s: float = 15.0,
) -> Sink:
    """A sink of ``topics`` in consumer group ``group_id``. With ``instance_id`` (one stable id
    per sink) its membership is static: restarted within ``session_timeout_s``, it takes its
    partitions back without waiting for the group to notice that the old one died."""
    kind_of_topic = {topics[kind]: kind for kind in MEASUREMENTS}
    membership: dict[str, object] = {
        "session_timeout_ms": int(session_timeout_s * 1000),
        "heartbeat_interval_ms": min(3000, int(session_timeout_s * 1000) // 5),
        # The broker holds a rebalance open for up to this long waiting for every member to
        # join again (kafka-python's default: 5 minutes). The sink polls every 200 ms, and
        # every retry of a refused write polls too, so a minute bounds a stuck rebalance
        # without ever timing out a live sink.
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
    }
    if instance_id is not None:
        membership["group_instance_id"] = instance_id
    consumer = make_consumer(
        bootstrap,
        *kind_of_topic,
        group_id=group_id,
        options={**(kafka_options or {}), **membership},
    )
    try:
        letters = make_producer(bootstrap, kafka_options or {})
    except BaseException:
        consumer.close()
        raise
    return Sink(
        consumer,
        target,
        kind_of_topic,
        batch_size=batch_size,
        flush_interval_s=flush_interval_s,
        letters=letters,
        dlq_topic=topics["dlq"],
    )
