"""How the stack fails: clearly, with the service's own words, and without leftovers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import twin_stream.stack as stack_module
from twin_stream.errors import ServiceBinaryMissing, ServiceNotReady
from twin_stream.stack import Stack, port_is_open


def test_missing_kafka_jars_name_the_make_target(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "s", services=["kafka"], kafka_libs=tmp_path / "no-jars")
    with pytest.raises(ServiceBinaryMissing, match="make kafka-jars"):
        stack.up(timeout=5)


def test_a_service_that_dies_shows_its_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(stack_module, "free_port", lambda: port)
        stack = Stack(tmp_path / "s", services=["mosquitto"], device_ids=["pump-0001"])
        with pytest.raises(ServiceNotReady) as raised:
            stack.up(timeout=10)
    assert "exited with code" in str(raised.value)
    assert "Address already in use" in raised.value.log_tail
    assert stack.state is None


def test_unknown_service_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown services"):
        Stack(tmp_path, services=["zookeeper"])


def test_port_is_open_tells_listening_from_closed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_is_open(port)
    assert not port_is_open(port)
