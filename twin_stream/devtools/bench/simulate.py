"""``twin-stream bench simulate``: readings per second one simulator process gets into Mosquitto.

Side by side in one run, on the same broker: the simulated fleet (one paho-mqtt client per
device, QoS 1, every reading built and validated by the domain schemas) against Mosquitto's own
C client, ``mosquitto_pub -q 1 -l``, publishing the same kind of payloads. Only readings the
broker acknowledged (PUBACK) count.

``mosquitto_pub`` runs under the harness
(:class:`~twin_stream.devtools.stack.harness.ManagedProcess`): its lines are written to a file
before the clock starts and read as its standard input, its output goes to a log, and a run
that fails raises with its exit code and the end of that log.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulators.device import SimulatedDevice
from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.stack import Stack
from twin_stream.devtools.stack.harness import ManagedProcess
from twin_stream.domain.topics import mqtt_topic
from twin_stream.errors import ServiceBinaryMissing, ServiceExited

__all__ = ["bench_simulate"]


def _peer_mosquitto_pub(
    port: int, username: str, password: str, count: int, workdir: Path
) -> float:
    """Messages per second ``mosquitto_pub -q 1 -l`` gets acknowledged for ``count`` readings."""
    binary = shutil.which("mosquitto_pub")
    if binary is None:
        raise ServiceBinaryMissing("bench", "mosquitto_pub", "install 'mosquitto-clients'")
    device = SimulatedDevice.create(username, "infusion_pump", seed=1)
    now = datetime.now(UTC)
    lines = workdir / "peer.lines"
    lines.write_bytes(
        b"".join(device.telemetry_payload(float(i), 1.0, now) + b"\n" for i in range(count))
    )
    peer = ManagedProcess(
        "mosquitto_pub",
        [
            binary,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-u",
            username,
            "-P",
            password,
            "-i",
            f"{username}-peer",
            "-q",
            "1",
            "-t",
            mqtt_topic(username, "telemetry"),
            "-l",
        ],
        workdir / "peer.log",
        stdin=lines,
    )
    started = time.perf_counter()
    with peer:
        code = peer.wait(timeout=600)
        elapsed = time.perf_counter() - started
    if code != 0:
        raise ServiceExited(peer.name, code, peer.tail())
    return count / elapsed


def bench_simulate(
    *,
    devices: int = 50,
    rate_hz: float = 400.0,
    duration_s: float = 10.0,
    peer_count: int = 50_000,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run both publishers against a fresh local Mosquitto and return the figures."""
    plan = FleetPlan.generate(devices, hours=1.0, fault_fraction=0.0, seed=1)
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        stack = Stack(
            Path(tmp) / "stack",
            services=["mosquitto"],
            device_ids=[d.device_id for d in plan.devices],
        )
        state = stack.up()
        try:
            port = state.services["mosquitto"].port
            passwords = {a.username: a.password for a in stack.accounts}
            fleet = MqttFleet(
                plan, host="127.0.0.1", port=port, passwords=passwords, rate_hz=rate_hz
            )
            started = time.perf_counter()
            stats = fleet.run(duration_s, progress=progress)
            elapsed = time.perf_counter() - started
            first = plan.devices[0].device_id
            peer = _peer_mosquitto_pub(port, first, passwords[first], peer_count, Path(tmp))
        finally:
            stack.down()
    ours = stats.acked / elapsed
    return {
        "msgs_per_s": round(ours, 1),
        "peer_msgs_per_s": round(peer, 1),
        "ratio": round(ours / peer, 3),
        "devices": devices,
        "rate_hz": rate_hz,
        "duration_s": round(elapsed, 2),
        "published": stats.published,
        "acked": stats.acked,
        "dropped": stats.dropped,
        "peer": "mosquitto_pub -q 1 -l (one C client)",
        "machine": machine_info(),
    }
