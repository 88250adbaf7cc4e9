"""The MQTT <-> Kafka bridge: ``uplink`` (devices -> Kafka), ``downlink`` (commands -> devices),
``routing`` (validation and the dead-letter topic). :func:`run_bridge` runs both."""

from __future__ import annotations

import logging
import threading

from twin_stream.bridge.downlink import Downlink
from twin_stream.bridge.routing import Routed, dead_letter, route
from twin_stream.bridge.uplink import BridgeStats, MqttEndpoint, Uplink
from twin_stream.kafka import KAFKA_TOPICS, ensure_topics, make_consumer, make_producer

__all__ = [
    "BridgeStats",
    "MqttEndpoint",
    "Routed",
    "Uplink",
    "dead_letter",
    "route",
    "run_bridge",
]

log = logging.getLogger(__name__)


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
    consumer = make_consumer(
        bootstrap, topics["commands"], group_id=f"{share_group}-downlink", options=options
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
