"""The devices' MQTT client: one device's MQTT v5 connection (its own login), and the PUBACK
reason code of each message it sent."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from twin_stream.errors import MqttError

__all__ = ["NOT_AUTHORIZED", "NO_SUBSCRIBERS", "SUCCESS", "Broker", "DeviceClient", "packet_size"]

#: PUBACK reason codes (MQTT v5).
SUCCESS: Final = 0
NO_SUBSCRIBERS: Final = 16
NOT_AUTHORIZED: Final = 135


@dataclass(frozen=True)
class Broker:
    """Where the devices publish, and each device's password."""

    host: str
    port: int
    passwords: Mapping[str, str]


class DeviceClient:
    """One device's MQTT v5 connection, and the PUBACK reason code of each message it sent."""

    def __init__(self, broker: Broker, device_id: str) -> None:
        self.device_id = device_id
        self.connected = threading.Event()
        self.refusal: str | None = None
        self.max_packet_size: int | None = None
        self.acks: dict[int, int] = {}  # mid -> reason code
        self.dropped: int | None = None  # the broker closed the connection, with this reason
        self.sent = 0
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fuzz-{device_id}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(device_id, broker.passwords[device_id])
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.client = client
        self.broker = broker

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
        else:
            self.max_packet_size = getattr(properties, "MaximumPacketSize", None)
        self.connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.acks[mid] = reason.value

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.dropped is None:
            self.dropped = reason.value

    def connect(self, timeout: float = 10.0) -> None:
        self.client.connect(self.broker.host, self.broker.port, keepalive=60)
        self.client.loop_start()
        if not self.connected.wait(timeout) or self.refusal is not None:
            self.close()
            why = self.refusal or f"no CONNACK within {timeout:g} s"
            raise MqttError(f"mqtt {self.broker.host}:{self.broker.port}: {self.device_id}: {why}")

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"{self.device_id} could not publish on {topic}: {info.rc}")
        self.sent += 1
        if self.sent >= 65_535:  # mids wrap: one connection's answers would be mixed up
            raise MqttError(f"{self.device_id}: over 65,534 messages on one connection")
        return info.mid

    def settled(self) -> bool:
        return len(self.acks) >= self.sent

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def packet_size(topic: str, payload: bytes) -> int:
    """The size of a QoS 1 PUBLISH (MQTT v5, no properties): what a broker's
    ``max_packet_size`` is compared with."""
    remaining = 2 + len(topic.encode()) + 2 + 1 + len(payload)
    length_bytes = 1 + (remaining >= 128) + (remaining >= 16_384) + (remaining >= 2_097_152)
    return 1 + length_bytes + remaining
