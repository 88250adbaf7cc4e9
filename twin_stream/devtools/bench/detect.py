"""``twin-stream bench detect``: the cost of production's per-device path, DeviceMonitor.

Figures, each for one simulated infusion pump's readings (generated before any timing starts, so
the simulator's own cost is not counted):

* ``us_per_event``: mean microseconds per :meth:`DeviceMonitor.on_reading` after a warm-up
  (the monitor past its detector's warm-up, as a long-running device is), and its p99;
* ``cold_start_ms``: median milliseconds to create a monitor and score its first reading (what a
  worker pays for a device it has never seen);
* ``serialized_bytes_per_device``: ``len(monitor.dumps())`` after ``serialize_after`` readings,
  what a worker checkpoints per device;
* ``rss_mb_10k_devices``: resident memory growth, in MiB, of a fresh Python process holding
  10,000 monitors each fed ``readings_per_device`` readings. Measured in a child process (so this
  process's heap does not blur it) from ``/proc/self/statm`` (resident pages x page size) before
  the monitors are created and after, both after a ``gc.collect()``. With fewer devices than
  10,000 the growth is scaled linearly and ``rss_devices`` says how many were held.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from simulators.device import SimulatedDevice
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.bench.readback import percentile
from twin_stream.devtools.stack.harness import ManagedProcess
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.errors import ServiceExited

__all__ = ["TARGETS", "bench_detect", "pump_readings", "rss_child"]

TARGETS: Final[dict[str, float]] = {
    "us_per_event": 25,
    "cold_start_ms": 5,
    "serialized_bytes_per_device": 65536,
    "rss_mb_10k_devices": 1024,
}
START: Final = datetime(2026, 1, 5, tzinfo=UTC)
DEVICE_TYPE: Final = "infusion_pump"
#: Distinct simulated pumps whose readings the RSS child deals out to its monitors.
RSS_SERIES: Final = 8

Reading = tuple[datetime, int, dict[str, float | None]]


def pump_readings(count: int, *, seed: int = 1, interval_s: float = 1.0) -> list[Reading]:
    """``count`` readings of one healthy simulated infusion pump, one every ``interval_s``."""
    device = SimulatedDevice.create(
        f"pump-{seed:04d}", DEVICE_TYPE, seed=seed, sample_interval_s=interval_s
    )
    return [
        (START + timedelta(seconds=i * interval_s), i, device.sample(i * interval_s, interval_s))
        for i in range(count)
    ]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def rss_child(devices: int, readings_per_device: int) -> None:
    """Run in a fresh process: hold ``devices`` fed monitors, print the RSS growth as JSON.

    Prints ``{"progress": f}`` lines while it works, then ``{"rss_growth_bytes": n, ...}``.
    """
    series = [pump_readings(readings_per_device, seed=s + 1) for s in range(RSS_SERIES)]
    DeviceMonitor("pump-warm", DEVICE_TYPE)  # imports and first-use caches are not the fleet's
    gc.collect()
    before = _rss_bytes()
    monitors = []
    step = max(devices // 100, 1)
    for i in range(devices):
        monitor = DeviceMonitor(f"pump-{i:05d}", DEVICE_TYPE)
        for ts, seq, metrics in series[i % RSS_SERIES]:
            monitor.on_reading(ts, seq, metrics)
        monitors.append(monitor)
        if i % step == 0:
            print(json.dumps({"progress": i / devices}), flush=True)
    gc.collect()
    after = _rss_bytes()
    print(json.dumps({"rss_growth_bytes": after - before, "devices": len(monitors)}), flush=True)


def _measure_rss(
    devices: int, readings_per_device: int, progress: Callable[[float], None] | None
) -> int:
    """Run :func:`rss_child` under the process harness, its output (its JSON lines, and a
    traceback if it fails) in a log in a temporary directory, read as it grows; a child that
    fails, or ends without its result, raises with its exit code and the end of its log."""
    script = (
        "from twin_stream.devtools.bench.detect import rss_child; "
        f"rss_child({int(devices)}, {int(readings_per_device)})"
    )
    with tempfile.TemporaryDirectory(prefix="twin-bench-rss-") as tmp:
        child = ManagedProcess("rss-child", [sys.executable, "-c", script], Path(tmp) / "rss.log")
        growth: int | None = None
        with child, open(child.log, "rb") as out:
            pending = b""
            while True:
                exited = child.exit_code is not None  # read what it wrote before it exited
                pending += out.read()
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.startswith(b"{"):
                        continue
                    message = json.loads(line)
                    if "progress" in message and progress is not None:
                        progress(float(message["progress"]))
                    growth = message.get("rss_growth_bytes", growth)
                if exited:
                    break
                time.sleep(0.1)  # the next lines it writes
        code = child.exit_code
        if code != 0 or growth is None:
            raise ServiceExited(child.name, -1 if code is None else code, child.tail())
    return growth


def bench_detect(
    *,
    events: int = 20_000,
    warmup: int = 1_000,
    cold_starts: int = 50,
    serialize_after: int = 5_000,
    rss_devices: int = 10_000,
    readings_per_device: int = 200,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring, with the targets and the machine."""

    def report(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    # Per event: one monitor, warmed up, then ``events`` readings timed one by one.
    series = pump_readings(warmup + max(events, serialize_after))
    monitor = DeviceMonitor("pump-0001", DEVICE_TYPE)
    for ts, seq, metrics in series[:warmup]:
        monitor.on_reading(ts, seq, metrics)
    timings: list[float] = []
    clock = time.perf_counter_ns
    step = max(events // 50, 1)
    for i, (ts, seq, metrics) in enumerate(series[warmup : warmup + events]):
        started = clock()
        monitor.on_reading(ts, seq, metrics)
        timings.append((clock() - started) / 1000.0)
        if i % step == 0:
            report(0.2 * i / events)
    report(0.2)

    # Cold start: a monitor for a device never seen, and its first reading.
    cold: list[float] = []
    first = series[0]
    for i in range(cold_starts):
        started = clock()
        DeviceMonitor(f"pump-{i + 2:04d}", DEVICE_TYPE).on_reading(*first)
        cold.append((clock() - started) / 1e6)
    report(0.25)

    # Checkpoint size after ``serialize_after`` readings.
    saved = DeviceMonitor("pump-0001", DEVICE_TYPE)
    for ts, seq, metrics in series[:serialize_after]:
        saved.on_reading(ts, seq, metrics)
    size = len(saved.dumps())
    report(0.3)

    growth = _measure_rss(rss_devices, readings_per_device, lambda f: report(0.3 + 0.7 * f))
    report(1.0)
    growth_mb = growth / 2**20
    return {
        "us_per_event": round(statistics.fmean(timings), 2),
        "us_per_event_p99": round(percentile(timings, 0.99), 2),
        "cold_start_ms": round(statistics.median(cold), 3),
        "serialized_bytes_per_device": size,
        "rss_mb_10k_devices": round(growth_mb * 10_000 / rss_devices, 1),
        "rss_devices": rss_devices,
        "rss_readings_per_device": readings_per_device,
        "rss_method": "child process, /proc/self/statm resident pages before/after, after gc",
        "events": events,
        "warmup": warmup,
        "serialize_after": serialize_after,
        "device_type": DEVICE_TYPE,
        "detector": DETECTOR_VERSION,
        "targets": dict(TARGETS),
        "machine": machine_info(),
    }
