"""Identifiers on the real services (issue 23): a device's message with a patient's name ends
on the dead-letter topic redacted, and is not replayed; ``privacy scan`` finds what was planted
on Kafka and InfluxDB, and finds nothing on a clean platform."""

from __future__ import annotations

import base64
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaConsumer, KafkaProducer
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from tests.conftest import MqttBroker, running_bridge
from twin_stream.bridge.routing import dead_letter
from twin_stream.cli import app
from twin_stream.dlq import Letter, read_letters, replay
from twin_stream.domain.privacy import TOKEN_PREFIX
from twin_stream.domain.topics import kafka_topics, mqtt_topic, worker_changelogs
from twin_stream.kafka import ensure_topics

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
    with running_bridge(mosquitto, kafka_bootstrap, prefix) as stats:
        _publish(
            mosquitto.port, "pump-0001", password, mqtt_topic("pump-0001", "telemetry"), reading
        )
        record = _first_record(kafka_bootstrap, topics["dlq"])
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


# --- twin-stream privacy scan, on a real Kafka and InfluxDB -----------------------------------


def _influxql(url: str, q: str, db: str | None = None) -> None:
    params = {"q": q, **({"db": db} if db else {})}
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=10) as response:
        assert "error" not in orjson.loads(response.read())["results"][0]


def _produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for topic, key, value in records:
            producer.send(topic, key=key, value=value).get(30)
    finally:
        producer.close()


#: a changelog value that is no JSON, holding an HL7 message with a PID segment
_pickled_hl7 = b"\x80\x04\x95MSH|^~\\&|ADT|H\rPID|1||12345^^^MRN||Roe^Jane\r."


def _scan(
    monkeypatch: pytest.MonkeyPatch, bootstrap: str, influx_url: str, db: str, prefix: str
) -> tuple[int, list[dict[str, Any]], str]:
    monkeypatch.setenv("TWIN_KAFKA__BOOTSTRAP", bootstrap)
    monkeypatch.setenv("TWIN_INFLUX__URL", influx_url)
    monkeypatch.setenv("TWIN_INFLUX__BUCKET", db)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    result = CliRunner().invoke(
        app, ["privacy", "scan", "--json", "--topic-prefix", prefix, "--since", since]
    )
    rows = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, rows, result.output


def test_the_scan_finds_identifiers_planted_on_kafka_and_influxdb_and_never_shows_them(
    kafka_bootstrap: str, influxdb_url: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"s{unique}"
    topics, changelogs = kafka_topics(prefix), worker_changelogs(prefix)
    ensure_topics(kafka_bootstrap, 2, {}, {**topics, **changelogs})
    letter = {
        "mqtt_topic": "twin/v1/devices/pump-0001/telemetry",
        "device_id": "pump-0001",
        "reason": "why [rule]",
        "received_at": datetime.now(UTC).isoformat(),
        # an unredacted letter, as one written before redaction was
        "payload_base64": base64.b64encode(b'{"email": "jane.roe@example.org"}').decode(),
    }
    _produce(
        kafka_bootstrap,
        [
            (topics["telemetry"], b"pump-0001", b'{"seq": 1, "patient_name": "Jane Roe"}'),
            (topics["telemetry"], b"pump-0002", b'{"seq": 2, "patient_name": "John Doe"}'),
            (topics["telemetry"], b"pump-0003", b'{"seq": 3}'),
            (topics["dlq"], b"pump-0001", orjson.dumps(letter)),
            (changelogs["models_changelog"], b"pump-0001", _pickled_hl7),
        ],
    )
    db = f"s_{unique}".replace("-", "_")
    _influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    with InfluxDBClient(url=influxdb_url, token="twin:unused", org="twin") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=f"{db}/autogen",
            record=[
                Point("status").tag("device_id", "pump-0001").tag("mrn", "123").field("up", 1),
                Point("dead_letter").field("reason", "call 555-867-5309").field("count", 1),
            ],
        )

    code, rows, output = _scan(monkeypatch, kafka_bootstrap, influxdb_url, db, prefix)
    assert code == 1, output
    assert {(r["source"], r["where"], r["field"], r["kind"], r["count"]) for r in rows} == {
        ("kafka", topics["telemetry"], "patient_name", "name", 2),
        ("kafka", topics["dlq"], "payload.email", "email", 1),
        ("kafka", changelogs["models_changelog"], "(value)", "hl7_segment", 1),
        ("influxdb", "status", "mrn", "mrn", 1),
        ("influxdb", "dead_letter", "reason", "phone", 1),
    }
    for secret in ("Jane", "John", "jane.roe", "12345", "867"):
        assert secret not in output


def test_a_clean_platform_scans_clean_and_a_redacted_letter_is_no_finding(
    kafka_bootstrap: str, influxdb_url: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"c{unique}"
    topics = kafka_topics(prefix)
    ensure_topics(kafka_bootstrap, 2, {}, {**topics, **worker_changelogs(prefix)})
    redacted = dead_letter(
        "twin/v1/devices/pump-0001/telemetry",
        b'{"seq": 1, "patient_name": "Jane Roe"}',
        "patient_name: Extra inputs are not permitted [extra_forbidden]",
        datetime.now(UTC),
        "pump-0001",
        topics,
    )
    _produce(
        kafka_bootstrap,
        [
            (topics["telemetry"], b"pump-0001", b'{"seq": 1, "ts": "2026-12-07T11:00:00Z"}'),
            (redacted.kafka_topic, redacted.key, redacted.value),
        ],
    )
    db = f"c_{unique}".replace("-", "_")
    _influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    with InfluxDBClient(url=influxdb_url, token="twin:unused", org="twin") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=f"{db}/autogen",
            record=[Point("telemetry").tag("device_id", "pump-0001").field("seq", 1)],
        )
    code, rows, output = _scan(monkeypatch, kafka_bootstrap, influxdb_url, db, prefix)
    assert code == 0, output
    assert rows == []
    assert "0 identifiers found" in output
