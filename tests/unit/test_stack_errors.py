"""How the stack fails: clearly, with the service's own words, and without leftovers."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

import twin_stream.devtools.stack.service as service_module
from twin_stream.devtools.stack import Stack, port_is_open
from twin_stream.errors import ServiceBinaryMissing, ServiceNotReady


def test_missing_kafka_jars_name_the_make_target(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "s", services=["kafka"], kafka_libs=tmp_path / "no-jars")
    with pytest.raises(ServiceBinaryMissing, match="make kafka-jars"):
        stack.up(timeout=5)


def test_a_missing_influxd_names_the_make_target(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "s", services=["influxdb"], influxd=tmp_path / "no-influxd")
    with pytest.raises(ServiceBinaryMissing, match="make influxd"):
        stack.up(timeout=5)


def test_a_failed_influxdb_build_names_its_step(tmp_path: Path) -> None:
    """The build script stops at the first failing step, names it and shows the log's end."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool, script in {
        "go": 'echo "go: module lookup disabled by GOPROXY=off" >&2; exit 1',
        "cargo": "exit 0",
        "rustup": 'echo "stable-x86_64-unknown-linux-gnu (default)"',
    }.items():
        (fake_bin / tool).write_text(f"#!/bin/sh\n{script}\n")
        (fake_bin / tool).chmod(0o755)
    script = Path(__file__).resolve().parents[2] / "deploy" / "build-influxd.sh"
    env = {**os.environ, "PATH": f"{fake_bin}:/usr/bin:/bin"}
    env.pop("RUSTUP_TOOLCHAIN", None)
    result = subprocess.run(
        ["bash", str(script), "v1.13.2", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "failed at step: go install github.com/influxdata/pkg-config" in result.stderr
    assert "module lookup disabled" in result.stderr  # the log's end, not just "failed"
    assert not (tmp_path / "cache" / "bin" / "influxd").exists()


def test_a_service_that_dies_shows_its_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(service_module, "free_port", lambda: port)  # what a service binds
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
