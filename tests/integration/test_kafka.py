"""Apache Kafka (KRaft, official jars): produce with kafka-python, consume with aiokafka."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

pytestmark = pytest.mark.services


def test_keyed_messages_keep_their_order_per_key(kafka_bootstrap: str, unique: str) -> None:
    topic, group = f"t-{unique}", f"g-{unique}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
        described = admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 6
    finally:
        admin.close()

    keys = [f"dev-{i:02d}" for i in range(12)]
    per_key = 50
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        for seq in range(per_key):
            for key in keys:
                producer.send(topic, key=key.encode(), value=f"{key}:{seq}".encode())
        producer.flush(30)
    finally:
        producer.close()

    async def consume() -> tuple[dict[str, list[int]], dict[str, set[int]]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        seen: dict[str, list[int]] = defaultdict(list)
        partitions: dict[str, set[int]] = defaultdict(set)
        try:
            async with asyncio.timeout(60):
                while sum(map(len, seen.values())) < len(keys) * per_key:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for tp, records in batch.items():
                        for record in records:
                            key, seq = record.value.decode().split(":")
                            assert record.key.decode() == key
                            seen[key].append(int(seq))
                            partitions[key].add(tp.partition)
        finally:
            await consumer.stop()
        return seen, partitions

    seen, partitions = asyncio.run(consume())
    assert set(seen) == set(keys)
    for key in keys:
        assert seen[key] == list(range(per_key)), f"order broken for {key}"
        assert len(partitions[key]) == 1, f"{key} spread over partitions {partitions[key]}"
    assert len(set().union(*partitions.values())) > 1, "all keys on one partition"
