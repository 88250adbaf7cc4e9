"""Small synchronous paho-mqtt helpers for tests: connect, collect messages, wait."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Collected:
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)
    suback_codes: list[Any] = field(default_factory=list)
    puback_codes: dict[int, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def topics(self) -> list[str]:
        with self.lock:
            return [m.topic for m in self.messages]


def connect(
    port: int, username: str, password: str, *, protocol: int = mqtt.MQTTv5
) -> tuple[mqtt.Client, Collected]:
    """A connected client (network loop in a thread) and what it receives."""
    got = Collected()
    connected = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:10]}", protocol=protocol
    )
    client.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        assert not reason_code.is_failure, f"login of {username} refused: {reason_code}"
        connected.set()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with got.lock:
            got.messages.append(message)

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        got.suback_codes.extend(codes)

    def on_publish(_c: Any, _u: Any, mid: int, reason_code: Any, _p: Any) -> None:
        got.puback_codes[mid] = reason_code

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not connected.wait(10):
        close(client)  # its network thread and socket go with it
        raise TimeoutError(f"{username} did not get a CONNACK")
    return client, got


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def close(client: mqtt.Client) -> None:
    """Disconnect, then wait for the network thread to end (it closes the socket)."""
    client.disconnect()
    client.loop_stop()
