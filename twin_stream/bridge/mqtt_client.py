"""paho's MQTT client as the bridge uses it: its socket read ahead (:class:`ReadAhead`), what it
keeps open closed on release, and what its connect raises in our errors
(:data:`MQTT_CONNECT_ERRORS`). The uplink's session and the downlink's publishes go through one
:class:`BridgeClient`."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any, Final

import paho.mqtt.client as mqtt

from twin_stream.errors import ConfigError, MqttError, TwinStreamError

__all__ = ["MQTT_CONNECT_ERRORS", "BridgeClient", "ReadAhead"]

#: What paho's connect raises: a broker whose certificate does not verify (ssl.SSLError; its
#: SSLCertVerificationError is also a ValueError, hence first), a host or port it cannot use
#: (ValueError), and no broker there (refused, unreachable, DNS, timeout: OSErrors).
MQTT_CONNECT_ERRORS: Final[Mapping[type[BaseException], type[TwinStreamError]]] = {
    ssl.SSLError: MqttError,
    ValueError: ConfigError,
    OSError: MqttError,
}


class ReadAhead:
    """paho's socket, read ahead: one ``recv()`` of up to 64 KiB serves many packets, where paho
    alone makes three or four per packet (the command byte, each byte of the length, the rest),
    each releasing and taking back the GIL that the uplink's thread wants too.

    ``pending()`` counts the bytes held here, so paho's loop reads them without waiting in
    ``select()`` (the hook paho has for TLS sockets, whose ``pending()`` this adds to). A
    ``recv()`` raises what the socket raises (``BlockingIOError``, ``ssl.SSLWantReadError``),
    which paho handles as it does without this wrapper."""

    __slots__ = ("_buffer", "_pos", "_sock", "_sock_pending")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._sock_pending: Callable[[], int] | None = getattr(sock, "pending", None)  # TLS
        self._buffer = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        buffer: bytes = self._buffer
        pos = self._pos
        if pos >= len(buffer):
            buffer, pos = self._sock.recv(65536), 0
            if not buffer:  # the connection was closed
                return buffer
        chunk: bytes = buffer[pos : pos + size]
        self._buffer, self._pos = buffer, pos + len(chunk)
        return chunk

    def pending(self) -> int:
        held = len(self._buffer) - self._pos
        return held + self._sock_pending() if self._sock_pending is not None else held

    def send(self, data: bytes | bytearray) -> int:
        sent: int = self._sock.send(data)
        return sent

    def fileno(self) -> int:
        fd: int = self._sock.fileno()
        return fd

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._sock.close()


class BridgeClient(mqtt.Client):
    """paho's client, its socket read ahead (:class:`ReadAhead`). Should a paho release no
    longer make its socket in ``_create_socket``, this is paho's own client, only slower
    (tests/integration/test_bridge.py checks that the wrapper is in place)."""

    def _create_socket(self) -> Any:
        return ReadAhead(super()._create_socket())

    def release(self) -> None:
        """Close what paho keeps open after ``loop_stop()``: the socket pair that wakes its
        network loop, which paho closes only once the client is garbage-collected (for a client
        in a reference cycle, as the uplink's is, whenever the collector runs)."""
        self._reset_sockets()
