"""Identifiers on the real services (issue 23): a device's message with a patient's name ends
on the dead-letter topic redacted, and is not replayed."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from kafka import KafkaConsumer
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import MqttBroker
from twin_stream.bridge import run_bridge
from twin_stream.bridge.uplink import BridgeStats, MqttEndpoint
from twin_stream.dlq import Letter, read_letters, replay
from twin_stream.domain.privacy import TOKEN_PREFIX
from twin_stream.domain.topics import kafka_topics, mqtt_topic

pytestmark = pytest.mark.services


def _publish(port: int, username: str, password: str, topic: str, payload: bytes) -> None:
    """Publish one message at QoS 1 as a device, and wait for the broker's PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{username}-privacy")
    client.username_pw_set(username, password)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _first_record(bootstrap: str, topic: str, timeout: float = 30) -> Any:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                return records[0]
    finally:
        consumer.close()
    raise AssertionError(f"nothing on {topic} in {timeout:g} s")


def test_a_reading_with_a_patient_name_ends_on_the_dlq_redacted_and_is_not_replayed(
    mosquitto: MqttBroker, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"p{unique}"
    topics = kafka_topics(prefix)
    reading = orjson.dumps(
        {
            "v": 1,
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "seq": 1,
            "ts": datetime.now(UTC).isoformat(),
            "fw": "1.0.0",
            "metrics": {"motor_current": 0.3},
            "patient_name": "Jane Roe",
        }
    )
    password = mosquitto.account("pump-0001").password
    endpoint = MqttEndpoint(
        "127.0.0.1",
        mosquitto.port,
        mosquitto.bridge.username,
        mosquitto.bridge.password,
        client_id=f"{prefix}-bridge",
    )
    stop, ready = threading.Event(), threading.Event()
    stats: list[BridgeStats] = []
    thread = threading.Thread(
        target=lambda: stats.append(
            run_bridge(
                endpoint,
                kafka_bootstrap,
                stop=stop,
                share_group=prefix,
                topics=topics,
                on_ready=ready,
            )
        )
    )
    thread.start()
    try:
        assert ready.wait(60), "bridge did not start"
        _publish(
            mosquitto.port, "pump-0001", password, mqtt_topic("pump-0001", "telemetry"), reading
        )
        record = _first_record(kafka_bootstrap, topics["dlq"])
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    assert stats and stats[0].dead_lettered == 1
    raw = record.value  # type: ignore[attr-defined]
    assert b"Jane" not in raw and b"Roe" not in raw
    letter = orjson.loads(raw)
    assert letter["redacted"] == ["patient_name"]
    assert letter["reason"].startswith("patient_name: ")
    assert "(redacted: patient_name)" in letter["reason"]
    body = orjson.loads(base64.b64decode(letter["payload_base64"]))
    assert body["patient_name"].startswith(TOKEN_PREFIX) and body["seq"] == 1

    (found,) = [
        i for i in read_letters(kafka_bootstrap, {}, topic=topics["dlq"]) if isinstance(i, Letter)
    ]
    (outcome,) = replay(kafka_bootstrap, {}, [found], topics=topics)
    assert not outcome.sent
    assert outcome.reason == "redacted (patient_name): the original payload is not kept"
