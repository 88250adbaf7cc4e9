"""Mosquitto as stack.py runs it: per-device logins, ACLs, anonymous refused."""

from __future__ import annotations

import pytest

from tests.conftest import MqttBroker, close, connect, wait_until
from twin_stream.devtools.stack import mqtt_login_accepted
from twin_stream.domain.topics import mqtt_topic, mqtt_wildcard

pytestmark = pytest.mark.services


def test_device_publishes_and_bridge_receives_with_credentials(mosquitto: MqttBroker) -> None:
    device = mosquitto.account("pump-0001")
    bridge_client, bridge_got = connect(
        mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password
    )
    bridge_client.subscribe(mqtt_wildcard("telemetry"), qos=1)
    assert wait_until(lambda: bridge_got.suback_codes)
    device_client, _ = connect(mosquitto.port, device.username, device.password)
    try:
        info = device_client.publish(mqtt_topic("pump-0001", "telemetry"), b'{"seq": 1}', qos=1)
        info.wait_for_publish(5)
        assert wait_until(lambda: bridge_got.topics() == [mqtt_topic("pump-0001", "telemetry")])
        assert bridge_got.messages[0].payload == b'{"seq": 1}'
        assert bridge_got.messages[0].qos == 1
    finally:
        close(device_client)
        close(bridge_client)


def test_anonymous_and_wrong_password_are_refused(mosquitto: MqttBroker) -> None:
    assert mqtt_login_accepted(mosquitto.port, None, None) is False
    assert mqtt_login_accepted(mosquitto.port, "pump-0001", "not-the-password") is False
    assert mqtt_login_accepted(mosquitto.port, "no-such-device", "x") is False
    device = mosquitto.account("pump-0001")
    assert mqtt_login_accepted(mosquitto.port, device.username, device.password) is True


def test_device_cannot_publish_under_another_devices_topic(mosquitto: MqttBroker) -> None:
    pump = mosquitto.account("pump-0001")
    bridge_client, bridge_got = connect(
        mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password
    )
    bridge_client.subscribe(mqtt_wildcard("telemetry"), qos=1)
    assert wait_until(lambda: bridge_got.suback_codes)
    pump_client, pump_got = connect(mosquitto.port, pump.username, pump.password)
    try:
        forged = pump_client.publish(mqtt_topic("vent-0002", "telemetry"), b"forged", qos=1)
        forged.wait_for_publish(5)
        # MQTT 5 tells the publisher: PUBACK reason code 0x87 "Not authorized".
        assert wait_until(lambda: forged.mid in pump_got.puback_codes)
        assert pump_got.puback_codes[forged.mid].value == 0x87
        # Same connection, sent after: once this arrives, the forged one would have too.
        own = pump_client.publish(mqtt_topic("pump-0001", "telemetry"), b"own", qos=1)
        own.wait_for_publish(5)
        # (The forged one was refused before this was sent: its PUBACK came back first.)
        assert wait_until(lambda: len(bridge_got.messages) >= 1)
        assert [m.payload for m in bridge_got.messages] == [b"own"]
    finally:
        close(pump_client)
        close(bridge_client)


def test_device_reads_only_its_own_desired_state(mosquitto: MqttBroker) -> None:
    pump, vent = mosquitto.account("pump-0001"), mosquitto.account("vent-0002")
    pump_client, pump_got = connect(mosquitto.port, pump.username, pump.password)
    vent_client, vent_got = connect(mosquitto.port, vent.username, vent.password)
    bridge_client, _ = connect(mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password)
    try:
        pump_client.subscribe(mqtt_topic("vent-0002", "desired"), qos=1)  # not its own
        vent_client.subscribe(mqtt_topic("vent-0002", "desired"), qos=1)
        assert wait_until(lambda: pump_got.suback_codes and vent_got.suback_codes)
        bridge_client.publish(
            mqtt_topic("vent-0002", "desired"), b'{"v": 1}', qos=1
        ).wait_for_publish(5)
        assert wait_until(lambda: len(vent_got.messages) == 1)
        # Then one the pump may read, from the same publisher: once it has it, the vent's
        # would have reached it before (the broker keeps one publisher's order per subscriber).
        pump_client.subscribe(mqtt_topic("pump-0001", "desired"), qos=1)
        assert wait_until(lambda: len(pump_got.suback_codes) == 2)
        bridge_client.publish(
            mqtt_topic("pump-0001", "desired"), b'{"v": 2}', qos=1
        ).wait_for_publish(5)
        assert wait_until(lambda: len(pump_got.messages) >= 1)
        assert [m.payload for m in pump_got.messages] == [b'{"v": 2}']
        # A device may not write desired state, not even its own: only the platform may.
        denied = vent_client.publish(mqtt_topic("vent-0002", "desired"), b"{}", qos=1)
        denied.wait_for_publish(5)
        assert wait_until(lambda: denied.mid in vent_got.puback_codes)
        assert vent_got.puback_codes[denied.mid].value == 0x87
    finally:
        for c in (pump_client, vent_client, bridge_client):
            close(c)
