"""Readings for the worker's tests: one simulated device's telemetry records, as the bridge
forwards them (used by test_checkpoint.py, test_device_state.py and test_replay.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulators.fast_forward import readings
from simulators.fleet import FleetPlan

#: The readings' clock: the last one is made a second before this.
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def raw_readings(n: int, *, faults: float = 0.0, seed: int = 3) -> list[bytes]:
    """``n`` readings of one device, one a second, ending at :data:`NOW`."""
    plan = FleetPlan.generate(1, hours=n / 3600, fault_fraction=faults, seed=seed)
    return [
        r.model_dump_json(exclude_none=True).encode()
        for r in readings(plan, interval_s=1.0, start=NOW - timedelta(seconds=n))
    ]
