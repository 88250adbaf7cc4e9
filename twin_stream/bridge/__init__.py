"""The MQTT <-> Kafka bridge: ``uplink`` (devices -> Kafka), ``downlink`` (commands -> devices),
``routing`` (validation and the dead-letter topic). :func:`run_bridge` runs both."""

from __future__ import annotations

import logging
import threading

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from twin_stream.bridge.downlink import Downlink
from twin_stream.bridge.uplink import BridgeStats, MqttEndpoint, Uplink
from twin_stream.domain.topics import KAFKA_TOPICS

__all__ = ["BridgeStats", "MqttEndpoint", "Uplink", "ensure_topics", "make_producer", "run_bridge"]

log = logging.getLogger(__name__)


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


def run_bridge(
    endpoint: MqttEndpoint,
    bootstrap: str,
    *,
    stop: threading.Event,
    share_group: str = "twin-bridge",
    max_unacked: int = 1000,
    partitions: int = 6,
    kafka_options: dict[str, object] | None = None,
    topics: dict[str, str] = KAFKA_TOPICS,
    on_ready: threading.Event | None = None,
) -> BridgeStats:
    """Run uplink and downlink until ``stop`` is set; return the uplink's counters."""
    options = kafka_options or {}
    ensure_topics(bootstrap, partitions, options, topics)
    producer = make_producer(bootstrap, options)
    uplink = Uplink(
        endpoint, producer, share_group=share_group, max_unacked=max_unacked, topics=topics
    )
    consumer = KafkaConsumer(
        topics["commands"],
        bootstrap_servers=bootstrap,
        group_id=f"{share_group}-downlink",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
    downlink = Downlink(consumer, uplink.client)
    uplink.start()
    if on_ready is not None:
        uplink.connected.wait(30)
        on_ready.set()
    thread = threading.Thread(target=downlink.run, args=(stop,), name="downlink", daemon=True)
    thread.start()
    try:
        uplink.run(stop)
    finally:
        uplink.stop()
        thread.join(timeout=10)
        consumer.close()
        producer.close(timeout=10)
    return uplink.stats
