"""``twin-stream devices`` on the real Mosquitto of a running local stack: a device added, rotated
or revoked is what the broker lets in, on its own topics only, once the command has made it
reload (SIGHUP), and no other account changes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from tests.conftest import close, connect, wait_until
from twin_stream.cli import app as cli
from twin_stream.devtools.stack import Stack, mqtt_login_accepted
from twin_stream.domain.topics import mqtt_topic, mqtt_wildcard
from twin_stream.mqtt_auth import MqttAccount

pytestmark = pytest.mark.services

#: MQTT 5's "Not authorized" (CONNACK, PUBACK, SUBACK) and "Bad user name or password".
NOT_AUTHORIZED, BAD_LOGIN = 0x87, 0x86


@dataclass
class Broker:
    stack: Stack
    port: int
    root: Path

    def account(self, username: str) -> MqttAccount:
        return next(a for a in self.stack.accounts if a.username == username)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A local stack of its own (Mosquitto only): these tests change its files."""
    root = tmp_path_factory.mktemp("devices-stack")
    stack = Stack(root, services=["mosquitto"], device_ids=["pump-0001", "vent-0002"])
    state = stack.up(timeout=60)
    yield Broker(stack, state.services["mosquitto"].port, root)
    stack.down()


@pytest.fixture
def devices(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> Broker:
    """The devices command pointed at the running stack (no TWIN_DEVICES__* set)."""
    monkeypatch.setenv("TWIN_STACK__DIR", str(broker.root))
    for name in ("PASSWORD_FILE", "ACL_FILE", "REGISTRY_FILE"):
        monkeypatch.delenv(f"TWIN_DEVICES__{name}", raising=False)
    return broker


def run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["devices", *args])
    assert result.exit_code == 0, result.output
    assert "reloads its password and ACL files" in result.stderr  # SIGHUP to the stack's broker
    return json.loads(result.stdout) if "--json" in args else {}


def connack(port: int, username: str, password: str) -> int:
    """The reason code of the broker's CONNACK to this MQTT 5 login."""
    answers: list[Any] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:10]}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, reason_code, _p: answers.append(reason_code)
    client.connect("127.0.0.1", port, keepalive=5)
    try:
        assert wait_until(lambda: client.loop(timeout=0.1) != 0 or bool(answers), timeout=5)
    finally:
        client.disconnect()
        sock = client.socket()
        if sock is not None:
            sock.close()
    assert answers, "no CONNACK"
    return int(answers[0].value)


def accepted(broker: Broker, username: str, password: str) -> bool:
    return mqtt_login_accepted(broker.port, username, password)


def test_an_added_device_publishes_and_reads_its_own_topics_only(devices: Broker) -> None:
    added = run("add", "pump-0101", "--type", "infusion_pump", "--json")
    password = added["password"]
    assert wait_until(lambda: accepted(devices, "pump-0101", password), timeout=10)
    bridge = devices.account("bridge")
    bridge_client, bridge_got = connect(devices.port, bridge.username, bridge.password)
    device_client, device_got = connect(devices.port, "pump-0101", password)
    try:
        bridge_client.subscribe(mqtt_wildcard("telemetry"), qos=1)
        assert wait_until(lambda: bridge_got.suback_codes)
        # Another device's topics: the publish is refused (PUBACK "Not authorized", nothing
        # delivered); a subscription is taken (Mosquitto 2.0 grants it) but nothing of the
        # other device's reaches it, while that device itself gets its message.
        forged = device_client.publish(mqtt_topic("vent-0002", "telemetry"), b"forged", qos=1)
        forged.wait_for_publish(5)
        assert wait_until(lambda: forged.mid in device_got.puback_codes)
        assert device_got.puback_codes[forged.mid].value == NOT_AUTHORIZED
        vent = devices.account("vent-0002")
        vent_client, vent_got = connect(devices.port, vent.username, vent.password)
        try:
            vent_client.subscribe(mqtt_topic("vent-0002", "desired"), qos=1)
            device_client.subscribe(mqtt_topic("vent-0002", "desired"), qos=1)
            assert wait_until(lambda: vent_got.suback_codes and device_got.suback_codes)
            sent = bridge_client.publish(mqtt_topic("vent-0002", "desired"), b'{"v":1}', qos=1)
            sent.wait_for_publish(5)
            assert wait_until(lambda: len(vent_got.messages) == 1)
            # Then one this device may read, from the same publisher: once it has it, the
            # vent's would have reached it before (one publisher's order is kept per client).
            device_client.subscribe(mqtt_topic("pump-0101", "desired"), qos=1)
            assert wait_until(lambda: len(device_got.suback_codes) == 2)
            marker = bridge_client.publish(mqtt_topic("pump-0101", "desired"), b'{"v":0}', qos=1)
            marker.wait_for_publish(5)
            assert wait_until(lambda: len(device_got.messages) >= 1)
            assert [m.payload for m in device_got.messages] == [b'{"v":0}']
            with device_got.lock:
                device_got.messages.clear()
        finally:
            close(vent_client)
        # Its own: delivered, and its desired state readable (subscribed above).
        own = device_client.publish(mqtt_topic("pump-0101", "telemetry"), b"own", qos=1)
        own.wait_for_publish(5)
        assert wait_until(lambda: own.mid in device_got.puback_codes)
        assert device_got.puback_codes[own.mid].value == 0
        assert wait_until(lambda: bridge_got.topics() == [mqtt_topic("pump-0101", "telemetry")])
        assert [m.payload for m in bridge_got.messages] == [b"own"]
        mine = bridge_client.publish(mqtt_topic("pump-0101", "desired"), b'{"v":2}', qos=1)
        mine.wait_for_publish(5)
        assert wait_until(lambda: [m.payload for m in device_got.messages] == [b'{"v":2}'])
        # It may not write desired state, not even its own: only the platform may.
        denied = device_client.publish(mqtt_topic("pump-0101", "desired"), b"{}", qos=1)
        denied.wait_for_publish(5)
        assert wait_until(lambda: denied.mid in device_got.puback_codes)
        assert device_got.puback_codes[denied.mid].value == NOT_AUTHORIZED
    finally:
        close(device_client)
        close(bridge_client)


def test_wrong_credentials_are_refused_at_connect(devices: Broker) -> None:
    password = run("add", "vent-0101", "--type", "ventilator", "--json")["password"]
    assert wait_until(lambda: accepted(devices, "vent-0101", password), timeout=10)
    assert connack(devices.port, "vent-0101", password) == 0
    assert connack(devices.port, "vent-0101", password + "x") in (BAD_LOGIN, NOT_AUTHORIZED)
    # Another device's password is no key to this one.
    other = devices.account("vent-0002").password
    assert connack(devices.port, "vent-0101", other) in (BAD_LOGIN, NOT_AUTHORIZED)
    assert connack(devices.port, "mon-0101", password) in (BAD_LOGIN, NOT_AUTHORIZED)


def test_a_revoked_device_is_refused_and_no_other_device_is_touched(devices: Broker) -> None:
    kept = run("add", "mon-0101", "--type", "patient_monitor", "--json")["password"]
    gone = run("add", "mon-0102", "--type", "patient_monitor", "--json")["password"]
    assert wait_until(lambda: accepted(devices, "mon-0102", gone), timeout=10)
    # Connected while it is revoked: the reload ends its session, and it cannot come back.
    connacks: list[int] = []
    live = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="mon-0102", protocol=mqtt.MQTTv5)
    live.username_pw_set("mon-0102", gone)
    live.on_connect = lambda _c, _u, _f, reason_code, _p: connacks.append(reason_code.value)
    live.connect("127.0.0.1", devices.port, keepalive=30)
    live.loop_start()
    try:
        assert wait_until(lambda: connacks == [0])
        run("revoke", "mon-0102")
        assert wait_until(lambda: not live.is_connected() and len(connacks) > 1, timeout=15)
        assert set(connacks[1:]) <= {BAD_LOGIN, NOT_AUTHORIZED}
    finally:
        live.disconnect()
        live.loop_stop()
    assert not accepted(devices, "mon-0102", gone)
    assert connack(devices.port, "mon-0102", gone) in (BAD_LOGIN, NOT_AUTHORIZED)
    assert accepted(devices, "mon-0101", kept)
    for fleet_device in ("pump-0001", "vent-0002", "bridge"):
        assert accepted(devices, fleet_device, devices.account(fleet_device).password)
    listed = json.loads(CliRunner().invoke(cli, ["devices", "list", "--json"]).stdout)
    ids = {d["device_id"]: d for d in listed}
    assert "mon-0102" not in ids and ids["mon-0101"]["device_type"] == "patient_monitor"
    assert ids["pump-0001"]["device_type"] is None and "bridge" not in ids


def test_a_rotated_device_needs_its_new_password_and_others_keep_theirs(devices: Broker) -> None:
    first = run("add", "dial-0101", "--type", "dialysis_machine", "--json")["password"]
    neighbour = run("add", "dial-0102", "--type", "dialysis_machine", "--json")["password"]
    assert wait_until(lambda: accepted(devices, "dial-0102", neighbour), timeout=10)
    second = run("rotate", "dial-0101", "--json")["password"]
    assert second != first
    assert wait_until(lambda: accepted(devices, "dial-0101", second), timeout=10)
    assert connack(devices.port, "dial-0101", first) in (BAD_LOGIN, NOT_AUTHORIZED)
    assert accepted(devices, "dial-0102", neighbour)
    assert accepted(devices, "pump-0001", devices.account("pump-0001").password)
    # The rotated device still works on its own topics with the new password.
    client, got = connect(devices.port, "dial-0101", second)
    try:
        info = client.publish(mqtt_topic("dial-0101", "status"), b"{}", qos=1)
        info.wait_for_publish(5)
        assert wait_until(lambda: info.mid in got.puback_codes)
        assert not got.puback_codes[info.mid].is_failure  # accepted (no subscriber here)
    finally:
        close(client)
