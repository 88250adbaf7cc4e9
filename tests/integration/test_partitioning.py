"""Every producer of the platform puts a device's records on the same partition number: the
bridge's librdkafka producer agrees with Kafka's own partitioner (murmur2), which Faust's router,
its tables and aiokafka use. Otherwise the twin API asks the wrong worker for a device."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2

from twin_stream.kafka import close_librdkafka_producer, ensure_topics, make_librdkafka_producer

pytestmark = pytest.mark.services

DEVICES = [f"pump-{i:04d}" for i in range(1, 41)]


def test_the_bridges_producer_partitions_by_kafkas_murmur2(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.telemetry"
    ensure_topics(kafka_bootstrap, 6, {}, {"telemetry": topic})
    producer = make_librdkafka_producer(kafka_bootstrap, {})
    try:
        for device in DEVICES:
            producer.produce(topic, key=device.encode(), value=b"{}")
    finally:
        assert close_librdkafka_producer(producer) == 0
    expected = {d: (murmur2(d.encode()) & 0x7FFFFFFF) % 6 for d in DEVICES}
    assert len(set(expected.values())) > 1  # the keys spread: the check can fail
    with KafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    ) as consumer:
        seen: dict[str, int] = {}
        while len(seen) < len(DEVICES):
            batches = consumer.poll(timeout_ms=10_000)
            assert batches, f"only {len(seen)} of {len(DEVICES)} records arrived"
            for records in batches.values():
                seen.update({r.key.decode(): r.partition for r in records})
    assert seen == expected
