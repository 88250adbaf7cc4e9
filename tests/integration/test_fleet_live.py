"""The simulated fleet live on the real Mosquitto: every reading once, desired state round trip."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from tests.conftest import MqttBroker, close, connect, wait_until
from twin_stream.domain.messages import DesiredMessage
from twin_stream.domain.topics import device_id_from_mqtt_topic, mqtt_topic, mqtt_wildcard

pytestmark = pytest.mark.services


def fleet_for(broker: MqttBroker, plan: FleetPlan, **kwargs: float | bool) -> MqttFleet:
    passwords = {d.device_id: broker.account(d.device_id).password for d in plan.devices}
    return MqttFleet(plan, host=broker.host, port=broker.port, passwords=passwords, **kwargs)


def test_ten_devices_every_seq_arrives_exactly_once(mosquitto: MqttBroker) -> None:
    plan = FleetPlan.generate(10, hours=1, fault_fraction=0.0, seed=21)
    bridge, got = connect(mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password)
    bridge.subscribe(mqtt_wildcard("telemetry"), qos=1)
    assert wait_until(lambda: got.suback_codes)
    try:
        stats = fleet_for(mosquitto, plan, rate_hz=5.0, record_seqs=True).run(4.0)
        assert stats.published > 10 * 5 * 3
        assert stats.acked == stats.published and stats.dropped == 0
        assert wait_until(lambda: len(got.messages) >= stats.published, timeout=15)
    finally:
        close(bridge)
    received: Counter[tuple[str, int]] = Counter()
    for message in got.messages:
        device_id, _ = device_id_from_mqtt_topic(message.topic)
        payload = orjson.loads(message.payload)
        assert payload["device_id"] == device_id
        received[(device_id, payload["seq"])] += 1
    published = {(d, s) for d, seqs in stats.published_seqs.items() for s in seqs}
    assert len(published) == stats.published
    assert set(received) == published
    assert max(received.values()) == 1  # exactly once
    assert {d for d, _ in received} == {d.device_id for d in plan.devices}


def desired(command_id: str, **settings: float) -> bytes:
    now = datetime.now(UTC)
    return (
        DesiredMessage.model_validate(
            {
                "command_id": command_id,
                "twin_version": 7,
                "issued_at": now,
                "expires_at": now + timedelta(minutes=10),
                "desired": settings,
            }
        )
        .model_dump_json()
        .encode()
    )


def test_device_applies_desired_state_and_reports_it_back(mosquitto: MqttBroker) -> None:
    plan = FleetPlan.generate(2, hours=1, fault_fraction=0.0, seed=22)  # pump-0001, vent-0002
    bridge, got = connect(mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password)
    bridge.subscribe([(mqtt_wildcard("reported"), 1), (mqtt_wildcard("ack"), 1)])
    assert wait_until(lambda: len(got.suback_codes) == 2)
    # The ventilator is offline when its desired state is set: retained, it gets it on connect.
    bridge.publish(
        mqtt_topic("vent-0002", "desired"), desired("cmd-offline-01", rate=18.0), qos=1, retain=True
    ).wait_for_publish(5)
    fleet = fleet_for(mosquitto, plan, rate_hz=2.0)
    runner = threading.Thread(target=fleet.run, args=(6.0,))
    runner.start()
    try:
        assert wait_until(lambda: any(m.topic.endswith("pump-0001/reported") for m in got.messages))
        bridge.publish(
            mqtt_topic("pump-0001", "desired"),
            desired("cmd-online-001", rate=42.0, sample_interval_s=0.25),
            qos=1,
            retain=True,
        ).wait_for_publish(5)

        def report_for(device: str, command_id: str) -> dict[str, object] | None:
            for m in list(got.messages):
                if m.topic == mqtt_topic(device, "reported"):
                    body = orjson.loads(m.payload)
                    if body.get("command_id") == command_id:
                        return body  # type: ignore[no-any-return]
            return None

        assert wait_until(lambda: report_for("pump-0001", "cmd-online-001"), timeout=10)
        assert wait_until(lambda: report_for("vent-0002", "cmd-offline-01"), timeout=10)
        pump = report_for("pump-0001", "cmd-online-001")
        vent = report_for("vent-0002", "cmd-offline-01")
        assert pump is not None and vent is not None
        assert pump["settings"] == {"rate": 42.0, "sample_interval_s": 0.25, "maintenance_epoch": 0}
        assert vent["settings"]["rate"] == 18.0  # type: ignore[index]
        acks = [orjson.loads(m.payload) for m in got.messages if m.topic.endswith("/ack")]
        assert {(a["command_id"], a["status"]) for a in acks} >= {
            ("cmd-online-001", "applied"),
            ("cmd-offline-01", "applied"),
        }
    finally:
        runner.join()
        for device in ("pump-0001", "vent-0002"):  # clear the retained desired state
            bridge.publish(mqtt_topic(device, "desired"), b"", qos=1, retain=True).wait_for_publish(
                5
            )
        close(bridge)
    assert fleet.stats.command_results["applied"] >= 2


def test_a_fleet_held_up_still_samples_every_reading_on_its_own_schedule(
    mosquitto: MqttBroker,
) -> None:
    """A fleet that did not run for a second (a busy machine) publishes the readings it owes,
    each with the timestamp of its planned sample: its data does not depend on scheduling."""
    plan = FleetPlan.generate(3, hours=1, fault_fraction=0.0, seed=23)
    bridge, got = connect(mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password)
    bridge.subscribe(mqtt_wildcard("telemetry"), qos=1)
    assert wait_until(lambda: got.suback_codes)
    start = time.monotonic()
    held = {"skew": 0.0}

    def clock() -> float:  # 1 s into the run it jumps 1 s ahead, as if it had been stopped
        if time.monotonic() - start >= 1.0:
            held["skew"] = 1.0
        return time.monotonic() + held["skew"]

    rate, duration = 5.0, 3.0
    try:
        stats = fleet_for(mosquitto, plan, rate_hz=rate, clock=clock).run(duration)
        assert held["skew"] == 1.0  # it was held up during the run
        assert wait_until(lambda: len(got.messages) >= stats.published, timeout=15)
    finally:
        close(bridge)
    by_device: dict[str, list[datetime]] = {}
    for message in got.messages:
        payload = orjson.loads(message.payload)
        by_device.setdefault(payload["device_id"], []).append(datetime.fromisoformat(payload["ts"]))
    assert set(by_device) == {d.device_id for d in plan.devices}
    for device_id, stamps in by_device.items():
        # every reading it owed (none skipped over the held-up second)...
        assert len(stamps) >= rate * duration - 1, (device_id, len(stamps))
        # ...each one interval after the one before, held up or not
        gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
        assert all(abs(gap - 1 / rate) < 1e-3 for gap in gaps), (device_id, gaps)
