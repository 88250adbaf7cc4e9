"""Probes of the local stack: a free port, an open port, an HTTP GET, an MQTT login.

Each is one cheap question asked of a loopback server; none keeps a connection open.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["free_port", "http_get", "mqtt_login_accepted", "port_is_open"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def http_get(
    url: str, timeout: float = 2.0, *, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """The status and body of ``GET url`` (with ``headers``); an HTTP error status is returned,
    not raised."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as e:
        with e:  # it holds the response open
            return int(e.code), e.read()


def mqtt_login_accepted(
    port: int,
    username: str | None,
    password: str | None,
    timeout: float = 5.0,
    *,
    tls: ssl.SSLContext | None = None,
) -> bool:
    """Whether the broker on ``127.0.0.1:port`` accepts this login (None: anonymous), over TLS
    with the ``tls`` context if one is given (a failed handshake raises its ``ssl.SSLError``)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    answers: list[Any] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex}")
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set_context(tls)
    client.on_connect = lambda _c, _u, _f, reason_code, _p: answers.append(reason_code)
    client.connect("127.0.0.1", port, keepalive=5)
    try:
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
    finally:
        client.disconnect()
        sock = client.socket()  # a refused login leaves paho's socket open
        if sock is not None:
            sock.close()
    if not answers:
        raise TimeoutError("no CONNACK from the broker")
    return not answers[0].is_failure
