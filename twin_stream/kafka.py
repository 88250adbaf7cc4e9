"""Kafka for the bridge, the worker and the sink: topic names, topic creation, client factories.

Every topic is keyed by ``device_id``, so one device's events stay in order on one partition and
one worker owns the device. The names are defined, pure, in :mod:`twin_stream.domain.topics` and
re-exported here, next to the clients that use them.
"""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from twin_stream.domain.topics import KAFKA_TOPICS, kafka_topics

__all__ = ["KAFKA_TOPICS", "ensure_topics", "kafka_topics", "make_consumer", "make_producer"]


def ensure_topics(
    bootstrap: str,
    partitions: int,
    options: dict[str, object],
    topics: dict[str, str] = KAFKA_TOPICS,
) -> None:
    """Create every topic that does not exist yet (keyed topics need a fixed partition count)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(t, num_partitions=partitions, replication_factor=1)
            for t in topics.values()
            if t not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another bridge created them first
                pass
    finally:
        admin.close()


def make_producer(bootstrap: str, options: dict[str, object]) -> KafkaProducer:
    """An idempotent producer that waits for every in-sync replica."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_block_ms=1000,  # never stall the bridge loop for long when Kafka is away
        **options,
    )


def make_consumer(
    bootstrap: str, *topics: str, group_id: str, options: dict[str, object]
) -> KafkaConsumer:
    """A consumer of ``topics`` in ``group_id`` that commits only when told to (after what it
    read was handled) and starts a new group from the earliest offset."""
    return KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
