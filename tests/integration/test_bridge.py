"""The bridge on the real Mosquitto and Kafka: every message once, in order, DLQ, downlink."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import orjson
from kafka import KafkaConsumer, KafkaProducer

from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from tests.conftest import MqttBroker
from tests.mqtt_helpers import close, connect, wait_until
from twin_stream.bridge import run_bridge
from twin_stream.bridge.uplink import BridgeStats, MqttEndpoint
from twin_stream.domain.events import Command
from twin_stream.domain.topics import kafka_topics, mqtt_topic


@contextmanager
def bridge(
    broker: MqttBroker, bootstrap: str, prefix: str, **kwargs: int
) -> Iterator[list[BridgeStats]]:
    stop, ready = threading.Event(), threading.Event()
    endpoint = MqttEndpoint(
        "127.0.0.1",
        broker.port,
        broker.bridge.username,
        broker.bridge.password,
        client_id=f"{prefix}-bridge",
    )
    result: list[BridgeStats] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_bridge(
                endpoint,
                bootstrap,
                stop=stop,
                share_group=prefix,
                topics=kafka_topics(prefix),
                on_ready=ready,
                **kwargs,
            )
        )
    )
    thread.start()
    try:
        assert ready.wait(60), "bridge did not start"
        yield result
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[object]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[object] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # a little longer, to see duplicates if there were any
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def test_every_reading_reaches_kafka_once_in_order_and_bad_input_goes_to_dlq(
    mosquitto: MqttBroker, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"t{unique}"
    topics = kafka_topics(prefix)
    plan = FleetPlan.generate(5, hours=1, fault_fraction=0.0, seed=31)
    passwords = {d.device_id: mosquitto.account(d.device_id).password for d in plan.devices}
    fleet = MqttFleet(
        plan,
        host="127.0.0.1",
        port=mosquitto.port,
        passwords=passwords,
        rate_hz=10.0,
        record_seqs=True,
    )
    bad_payloads = [
        b"{not json",
        b'{"v":1}' + b" " * 20_000,
        orjson.dumps(
            {
                "v": 1,
                "device_id": "pump-0001",
                "device_type": "infusion_pump",
                "seq": 1,
                "ts": datetime.now(UTC).isoformat(),
                "fw": "1.0.0",
                "metrics": {"motor_current": 99.0},
            }
        ),
    ]
    with bridge(mosquitto, kafka_bootstrap, prefix) as stats:
        stats_fleet = fleet.run(3.0)
        device, _ = connect(mosquitto.port, "pump-0001", passwords["pump-0001"])
        for payload in bad_payloads:
            device.publish(mqtt_topic("pump-0001", "telemetry"), payload, qos=1).wait_for_publish(5)
        close(device)
        telemetry = read_topic(kafka_bootstrap, topics["telemetry"], stats_fleet.published)
        dlq = read_topic(kafka_bootstrap, topics["dlq"], 3)
    assert stats and stats[0].dead_lettered == 3
    seen: Counter[tuple[str, int]] = Counter()
    order: dict[str, list[int]] = defaultdict(list)
    for record in telemetry:
        body = orjson.loads(record.value)  # type: ignore[attr-defined]
        assert record.key.decode() == body["device_id"]  # type: ignore[attr-defined]
        seen[(body["device_id"], body["seq"])] += 1
        order[body["device_id"]].append(body["seq"])
    published = {(d, s) for d, seqs in stats_fleet.published_seqs.items() for s in seqs}
    assert set(seen) == published
    assert max(seen.values()) == 1
    assert all(seqs == sorted(seqs) for seqs in order.values())
    letters = [orjson.loads(r.value) for r in dlq]  # type: ignore[attr-defined]
    reasons = sorted(letter["reason"] for letter in letters)
    assert any("json_invalid" in r for r in reasons)
    assert any("too_large" in r for r in reasons)
    assert any(r.startswith("metrics.motor_current") for r in reasons)
    assert all(letter["mqtt_topic"] == mqtt_topic("pump-0001", "telemetry") for letter in letters)
    import base64

    assert {base64.b64decode(letter["payload_base64"]) for letter in letters} == set(bad_payloads)


def test_commands_reach_devices_as_retained_desired_state(
    mosquitto: MqttBroker, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"t{unique}"
    topics = kafka_topics(prefix)
    plan = FleetPlan.generate(2, hours=1, fault_fraction=0.0, seed=32)
    passwords = {d.device_id: mosquitto.account(d.device_id).password for d in plan.devices}
    with bridge(mosquitto, kafka_bootstrap, prefix):
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        now = datetime.now(UTC)
        # vent-0002 is not connected yet: retained desired state waits for it
        for device_id, rate in (("pump-0001", 55.0), ("vent-0002", 16.0)):
            command = Command.create(device_id, "set_rate", rate, now=now)
            producer.send(
                topics["commands"], key=device_id.encode(), value=command.model_dump_json().encode()
            )
        producer.flush(10)
        producer.close()
        # The desired state is retained: a device that subscribes later still gets it.
        watcher, got = connect(mosquitto.port, "pump-0001", passwords["pump-0001"])
        watcher.subscribe(mqtt_topic("pump-0001", "desired"), qos=1)
        assert wait_until(lambda: len(got.messages) >= 1, timeout=20)
        close(watcher)
        desired = orjson.loads(got.messages[0].payload)
        assert desired["desired"] == {"rate": 55.0}
        assert desired["command_id"] and desired["expires_at"] and "twin_version" in desired
        fleet = MqttFleet(
            plan, host="127.0.0.1", port=mosquitto.port, passwords=passwords, rate_hz=2.0
        )
        fleet.run(3.0)
        reported = read_topic(kafka_bootstrap, topics["reported"], 4)
    applied = {
        (body["device_id"], body["settings"]["rate"])
        for body in (orjson.loads(r.value) for r in reported)  # type: ignore[attr-defined]
        if body.get("command_id")
    }
    assert applied == {("pump-0001", 55.0), ("vent-0002", 16.0)}
    # clean up the retained messages for other tests
    cleaner, _ = connect(mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password)
    for device in ("pump-0001", "vent-0002"):
        cleaner.publish(mqtt_topic(device, "desired"), b"", qos=1, retain=True).wait_for_publish(5)
    close(cleaner)
