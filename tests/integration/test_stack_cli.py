"""`twin-stream stack up` / `status` / `down` by the real command, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from twin_stream.devtools.stack import port_is_open
from twin_stream.devtools.stack.processes import pid_alive

pytestmark = pytest.mark.services


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twin_stream", *args], capture_output=True, text=True, timeout=180
    )


def test_stack_up_then_down_leaves_no_process_or_port(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    up = run("stack", "up", "--dir", str(root), "--devices", "3", "--json")
    assert up.returncode == 0, up.stderr
    urls = json.loads(up.stdout)
    assert set(urls) == {"mosquitto", "mosquitto_tls", "ca_file", "kafka", "influxdb"}

    state = json.loads((root / "state.json").read_text())["services"]
    # Mosquitto's TLS listener: its own port, and the CA file clients verify it with.
    assert urls["mosquitto_tls"] == f"mqtts://127.0.0.1:{state['mosquitto']['ports'][1]}"
    assert urls["mosquitto_tls"] != urls["mosquitto"].replace("mqtt://", "mqtts://")
    assert Path(urls["ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    pids = [s["pid"] for s in state.values()]
    ports = [p for s in state.values() for p in s["ports"]]
    try:
        status = run("stack", "status", "--dir", str(root), "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert all(r["running"] and r["port_open"] for r in report.values()), report
        assert all(pid_alive(pid) for pid in pids)
    finally:
        down = run("stack", "down", "--dir", str(root))
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert [port for port in ports if port_is_open(port)] == []
    assert not (root / "state.json").exists()
    # status on a stopped stack says so and fails
    assert run("stack", "status", "--dir", str(root)).returncode != 0
