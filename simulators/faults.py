"""Fault models: how devices degrade and fail, and the ground truth of each injected fault.

A *degradation* drives one signal towards its type's failure limit (``twin_stream.domain.devices``)
and crosses it at the fault's failure time; ``maintenance_done`` ends it. *Sensor* faults
(stuck, drift, dropouts) corrupt a reading without harming the device, and *connectivity*
faults take the device off the network for a while. Neither has a failure time.

>>> fault = Fault("motor_wear", "degradation", "motor_current", onset_s=0.0, duration_s=100.0,
...               exponent=1.0)
>>> fault.progress(50.0)
0.5
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from twin_stream.domain.devices import DeviceType, metric_spec

__all__ = [
    "DEGRADATIONS",
    "GENERIC_FAULTS",
    "Fault",
    "FaultCategory",
    "FaultKind",
]

FaultCategory = Literal["degradation", "sensor", "connectivity"]

#: How far past the failure limit a signal is pushed at the failure time, so that the crossing
#: happens at (or just before) the labelled failure time despite noise and operating modes.
_MARGIN = 1.12


@dataclass(frozen=True)
class FaultKind:
    """A kind of fault: which signal it acts on, its shape and its typical duration."""

    name: str
    category: FaultCategory
    metric: str | None
    hours: tuple[float, float]  # onset -> failure (degradation) or how long it lasts
    exponent: float = 1.5  # shape of the degradation: 1 linear, >1 accelerating


def _kinds(*kinds: FaultKind) -> dict[str, FaultKind]:
    return {k.name: k for k in kinds}


DEGRADATIONS: dict[str, dict[str, FaultKind]] = {
    DeviceType.INFUSION_PUMP: _kinds(
        FaultKind("motor_wear", "degradation", "motor_current", (12, 48), 1.6),
        FaultKind("occlusion", "degradation", "line_pressure", (0.3, 1.0), 3.0),
        FaultKind("battery_degradation", "degradation", "battery", (12, 48), 1.5),
    ),
    DeviceType.VENTILATOR: _kinds(
        FaultKind("filter_clogging", "degradation", "filter_dp", (12, 48), 1.5),
        FaultKind("turbine_bearing_wear", "degradation", "turbine_temp", (12, 48), 2.0),
        FaultKind("o2_sensor_drift", "degradation", "o2_percent", (6, 24), 1.0),
    ),
    DeviceType.PATIENT_MONITOR: _kinds(
        FaultKind("battery_failure", "degradation", "battery", (6, 24), 1.5),
        FaultKind("connector_wear", "degradation", "signal_quality", (6, 24), 1.8),
    ),
    DeviceType.DIALYSIS_MACHINE: _kinds(
        FaultKind("pump_wear", "degradation", "blood_pump_speed", (12, 48), 2.0),
        FaultKind("heater_drift", "degradation", "dialysate_temp", (4, 12), 1.0),
        FaultKind("conductivity_sensor_fault", "degradation", "conductivity", (4, 12), 1.2),
    ),
    DeviceType.MRI_CHILLER: _kinds(
        FaultKind("compressor_degradation", "degradation", "compressor_temp", (12, 48), 1.5),
        FaultKind("coldhead_failure", "degradation", "coldhead_temp", (6, 24), 2.5),
        FaultKind("water_flow_blockage", "degradation", "cooling_water_flow", (2, 8), 1.3),
    ),
}

GENERIC_FAULTS: dict[str, FaultKind] = _kinds(
    FaultKind("stuck_sensor", "sensor", None, (2, 8)),
    FaultKind("sensor_drift", "sensor", None, (4, 12), 1.0),
    FaultKind("dropouts", "sensor", None, (1, 4)),
    FaultKind("offline", "connectivity", None, (0.25, 1.5)),
)


@dataclass
class Fault:
    """One fault injected into one device, with its ground truth."""

    kind: str
    category: FaultCategory
    metric: str | None
    onset_s: float  # simulated seconds after the start of the run
    duration_s: float
    exponent: float = 1.5
    repaired_at_s: float | None = None
    stuck_value: float | None = None
    drift_scale: float | None = None

    def progress(self, t_s: float) -> float:
        """0 before onset, 1 at the failure time; keeps rising a little after it."""
        if t_s < self.onset_s:
            return 0.0
        return min((t_s - self.onset_s) / self.duration_s, 1.25)

    def active(self, t_s: float) -> bool:
        if t_s < self.onset_s or (self.repaired_at_s is not None and t_s >= self.repaired_at_s):
            return False
        # Degradations last until maintenance; sensor and network faults pass by themselves.
        return self.category == "degradation" or t_s < self.onset_s + self.duration_s

    @property
    def failure_s(self) -> float | None:
        return self.onset_s + self.duration_s if self.category == "degradation" else None

    def is_offline(self, t_s: float) -> bool:
        return self.category == "connectivity" and self.active(t_s)

    def apply(
        self,
        metrics: dict[str, float | None],
        t_s: float,
        device_type: str,
        nominal: dict[str, float],
        rng: random.Random,
    ) -> None:
        """Change this reading's ``metrics`` in place the way this fault would."""
        if not self.active(t_s) or self.metric is None or metrics.get(self.metric) is None:
            return
        value = metrics[self.metric]
        assert value is not None
        p = self.progress(t_s)
        if self.category == "degradation":
            spec = metric_spec(device_type, self.metric)
            limit = spec.failure_above if spec.failure_above is not None else spec.failure_below
            assert limit is not None
            metrics[self.metric] = (
                value + (limit - nominal[self.metric]) * _MARGIN * p**self.exponent
            )
        elif self.kind == "stuck_sensor":
            if self.stuck_value is None:
                self.stuck_value = value
            metrics[self.metric] = self.stuck_value
        elif self.kind == "sensor_drift":
            # Signals without a fixed nominal (set by the operating mode) drift relative to
            # where they were when the drift began.
            if self.drift_scale is None:
                self.drift_scale = abs(nominal.get(self.metric, value)) + 1.0
            metrics[self.metric] = value + 0.25 * self.drift_scale * p
        elif self.kind == "dropouts" and rng.random() < 0.4:
            metrics[self.metric] = None

    def label(self, device_id: str, device_type: str, start: datetime) -> dict[str, Any]:
        """The ground-truth record of this fault, as written to labels.json."""

        def at(seconds: float | None) -> str | None:
            return None if seconds is None else (start + timedelta(seconds=seconds)).isoformat()

        end_s = None if self.category == "degradation" else self.onset_s + self.duration_s
        return {
            "device_id": device_id,
            "device_type": device_type,
            "fault": self.kind,
            "category": self.category,
            "metric": self.metric,
            "onset": at(self.onset_s),
            "failure": at(self.failure_s),
            "end": at(end_s),
            "repaired": at(self.repaired_at_s),
        }
