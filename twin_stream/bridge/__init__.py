"""The MQTT <-> Kafka bridge: ``uplink`` (devices -> Kafka), ``downlink`` (desired -> devices),
``routing`` (validation and the dead-letter topic). :func:`run_bridge` runs both."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from datetime import UTC, datetime

from twin_stream.bridge.downlink import Downlink
from twin_stream.bridge.routing import Routed, dead_letter, route
from twin_stream.bridge.uplink import BridgeStats, MqttEndpoint, Uplink
from twin_stream.domain.retention import Retention
from twin_stream.errors import map_exceptions
from twin_stream.kafka import (
    KAFKA_ERRORS,
    KAFKA_TOPICS,
    close_librdkafka_producer,
    ensure_topics,
    make_consumer,
    make_librdkafka_producer,
    make_producer,
)
from twin_stream.kafka_security import in_librdkafka_names

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
    shared: bool = False,
    max_unacked: int = 1000,
    partitions: int = 6,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    retention: Retention | None = None,
    kafka_options: dict[str, object] | None = None,
    topics: dict[str, str] = KAFKA_TOPICS,
    on_ready: threading.Event | None = None,
    producer_options: Mapping[str, object] | None = None,
) -> BridgeStats:
    """Run uplink and downlink until ``stop`` is set; return the uplink's counters.

    ``kafka_options`` are kafka-python's (:func:`~twin_stream.kafka_security.kafka_python_options`:
    topic creation and the downlink's consumer), ``producer_options`` librdkafka's for the
    uplink's producer (:func:`~twin_stream.kafka_security.librdkafka_options`; by default,
    ``kafka_options`` translated). ``retention``: how long each topic keeps its records.

    Raises a :class:`~twin_stream.errors.TwinStreamError` if it cannot start (Kafka or MQTT
    unreachable, the login refused), if the downlink fails (which also stops the uplink) or if
    the uplink's producer fails for good; what it made is closed either way."""
    options = kafka_options or {}
    if producer_options is None:
        producer_options = in_librdkafka_names(options)
    ensure_topics(
        bootstrap,
        partitions,
        options,
        topics,
        replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas,
        retention=retention,
    )
    failures: list[BaseException] = []
    with ExitStack() as running:
        producer = make_librdkafka_producer(bootstrap, producer_options)
        running.callback(close_librdkafka_producer, producer, timeout=10)
        consumer = make_consumer(
            bootstrap, topics["desired"], group_id=f"{share_group}-downlink", options=options
        )
        running.callback(consumer.close)
        uplink = Uplink(
            endpoint,
            producer,
            share_group=share_group,
            shared=shared,
            max_unacked=max_unacked,
            topics=topics,
        )
        # Rare (a record the worker wrote wrong): kafka-python, confirmed before the commit.
        letters = make_producer(bootstrap, options)
        running.callback(letters.close)

        def dead_letter_desired(key: bytes | None, value: bytes, reason: str) -> None:
            device = key.decode(errors="replace") if key else None
            letter = dead_letter(
                topics["desired"], value, reason, datetime.now(UTC), device, topics
            )
            with map_exceptions(KAFKA_ERRORS, "kafka: the downlink's dead letters"):
                letters.send(letter.kafka_topic, key=letter.key, value=letter.value).get(30)

        downlink = Downlink(consumer, uplink.client, dead_letter_desired)
        uplink.start()
        running.callback(uplink.stop)
        if on_ready is not None:
            uplink.connected.wait(30)
            on_ready.set()

        def run_downlink() -> None:
            try:
                with map_exceptions(KAFKA_ERRORS, "kafka: the downlink's consumer"):
                    downlink.run(stop)
            except BaseException as e:  # raised again by run_bridge, once everything stopped
                log.error("downlink failed, stopping the bridge: %s", e)
                failures.append(e)
                stop.set()

        thread = threading.Thread(target=run_downlink, name="downlink", daemon=True)
        thread.start()
        running.callback(thread.join, timeout=10)
        running.callback(stop.set)  # whatever ends the uplink ends the downlink too
        uplink.run(stop)
    if failures:
        raise failures[0]
    return uplink.stats
