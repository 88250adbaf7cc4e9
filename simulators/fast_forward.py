"""Fast-forward: run a fleet on a simulated clock, no network, and write a labelled dataset.

Writes ``DIR/telemetry.csv`` (one row per reading: ts, device_id, device_type, seq, then one
column per metric, empty where a device type has no such metric or the sensor gave no value)
and ``DIR/labels.json`` (every injected fault with its onset and failure time).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from simulators.fleet import DEFAULT_START, FleetPlan
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.messages import Telemetry

__all__ = ["METRIC_COLUMNS", "readings", "write_dataset"]

#: Every metric of every device type, each once, in a stable order.
METRIC_COLUMNS: list[str] = sorted({m for specs in METRICS_BY_TYPE.values() for m in specs})


def readings(
    plan: FleetPlan,
    *,
    interval_s: float,
    start: datetime = DEFAULT_START,
    progress: Callable[[float], None] | None = None,
) -> Iterator[Telemetry]:
    """Every reading of the run, in time order; ``progress`` gets the fraction done."""
    steps = int(plan.hours * 3600.0 / interval_s)
    for step in range(steps):
        t_s = step * interval_s
        wall = start + timedelta(seconds=t_s)
        for device in plan.devices:
            if device.offline(t_s):
                device.model.sample(t_s, interval_s)  # physics goes on while the network is down
                continue
            yield device.read(t_s, interval_s, wall)
        if progress is not None and step % 50 == 0:
            progress(step / steps)
    if progress is not None:
        progress(1.0)


def write_dataset(
    plan: FleetPlan,
    out: Path,
    *,
    interval_s: float,
    start: datetime = DEFAULT_START,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Write telemetry.csv and labels.json under ``out``; return the number of readings."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(out / "telemetry.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ts", "device_id", "device_type", "seq", *METRIC_COLUMNS])
        for r in readings(plan, interval_s=interval_s, start=start, progress=progress):
            metrics = r.metrics.model_dump()
            writer.writerow(
                [r.ts.isoformat(), r.device_id, r.device_type, r.seq]
                + ["" if metrics.get(m) is None else metrics[m] for m in METRIC_COLUMNS]
            )
            count += 1
    (out / "labels.json").write_text(json.dumps(plan.labels(start), indent=2) + "\n")
    return count
