"""A fleet plan: which devices exist and which faults they will suffer, decided by a seed.

>>> plan = FleetPlan.generate(devices=10, hours=24, fault_fraction=0.3, seed=42)
>>> [d.device_id for d in plan.devices][:3]
['pump-0001', 'vent-0002', 'mon-0003']
>>> len(plan.faulty_devices())
3
>>> FleetPlan.generate(devices=10, hours=24, fault_fraction=0.3, seed=42).labels() == plan.labels()
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulators.device import SimulatedDevice
from simulators.faults import DEGRADATIONS, GENERIC_FAULTS, Fault, FaultKind
from twin_stream.domain.devices import METRICS_BY_TYPE, fleet_device

__all__ = ["DEFAULT_START", "FleetPlan"]

#: Where simulated time starts, unless a run says otherwise (fixed, so output is reproducible).
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)

#: Share of faulty devices whose fault is a sensor or network problem rather than a
#: degradation towards failure: the detector must not mistake those for failing devices.
SENSOR_FAULT_SHARE = 0.2


def _fault_for(kind: FaultKind, device_type: str, hours: float, rng: random.Random) -> Fault:
    run_s = hours * 3600.0
    onset = rng.uniform(0.1, 0.45) * run_s
    duration = rng.uniform(*kind.hours) * 3600.0
    if kind.category == "degradation":
        # Compress long degradations into the run, so the failure happens before its end.
        duration = min(duration, 0.9 * run_s - onset)
    metric = kind.metric or rng.choice(sorted(METRICS_BY_TYPE[device_type]))
    return Fault(
        kind.name,
        kind.category,
        metric if kind.category != "connectivity" else None,
        onset,
        duration,
        kind.exponent,
    )


@dataclass
class FleetPlan:
    """The devices of a simulated run and their faults."""

    devices: list[SimulatedDevice]
    hours: float
    seed: int

    @classmethod
    def generate(
        cls,
        devices: int,
        *,
        hours: float,
        fault_fraction: float,
        seed: int,
        sample_interval_s: float = 1.0,
        start_hour: float = 0.0,
    ) -> FleetPlan:
        """A fleet of ``devices``; ``start_hour`` is the local time of day the run starts at."""
        if not 0.0 <= fault_fraction <= 1.0:
            raise ValueError("fault_fraction must be within [0, 1]")
        rng = random.Random(seed)
        ids = [fleet_device(i) for i in range(1, devices + 1)]
        n_faulty = round(devices * fault_fraction)
        faulty = set(rng.sample(range(devices), n_faulty))
        fleet = []
        for index, (device_id, device_type) in enumerate(ids):
            faults = []
            if index in faulty:
                if rng.random() < SENSOR_FAULT_SHARE:
                    kind = GENERIC_FAULTS[rng.choice(sorted(GENERIC_FAULTS))]
                else:
                    kind = DEGRADATIONS[device_type][rng.choice(sorted(DEGRADATIONS[device_type]))]
                faults.append(_fault_for(kind, device_type, hours, rng))
            fleet.append(
                SimulatedDevice.create(
                    device_id,
                    device_type,
                    seed=seed,
                    faults=faults,
                    sample_interval_s=sample_interval_s,
                    start_hour=start_hour,
                )
            )
        return cls(fleet, hours, seed)

    def faulty_devices(self) -> list[SimulatedDevice]:
        return [d for d in self.devices if d.faults]

    def labels(self, start: datetime | None = None) -> list[dict[str, Any]]:
        """Ground truth: every injected fault (onset, failure time) of every device."""
        origin = start or DEFAULT_START
        return [
            fault.label(d.device_id, d.device_type, origin)
            for d in self.devices
            for fault in d.faults
        ]
