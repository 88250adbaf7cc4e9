"""The device types twin-stream knows: their metrics, units, physical bounds and failure limits.

Each metric has a *physical bound* (what the sensor can possibly report; anything outside is
invalid telemetry) and, for the signals that degrade, a *failure limit* (crossing it means the
device has failed or must be taken out of service). The failure limits are the lines that
failure prediction extrapolates towards.

>>> spec = metric_spec("infusion_pump", "motor_current")
>>> spec.unit, spec.low, spec.high, spec.failure_above
('A', 0, 3, 0.8)
>>> sorted(METRICS_BY_TYPE["mri_chiller"])
['coldhead_temp', 'compressor_temp', 'cooling_water_flow', 'helium_level']
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = [
    "DEVICE_ID_PREFIX",
    "METRICS_BY_TYPE",
    "METRIC_MODELS",
    "DeviceType",
    "MetricSpec",
    "fleet_device",
    "metric_spec",
]


class DeviceType(StrEnum):
    """The kinds of medical device in a fleet."""

    INFUSION_PUMP = "infusion_pump"
    VENTILATOR = "ventilator"
    PATIENT_MONITOR = "patient_monitor"
    DIALYSIS_MACHINE = "dialysis_machine"
    MRI_CHILLER = "mri_chiller"


#: Short prefixes for device ids of each type (``pump-0001``).
DEVICE_ID_PREFIX: Final = {
    DeviceType.INFUSION_PUMP: "pump",
    DeviceType.VENTILATOR: "vent",
    DeviceType.PATIENT_MONITOR: "mon",
    DeviceType.DIALYSIS_MACHINE: "dial",
    DeviceType.MRI_CHILLER: "mri",
}


@dataclass(frozen=True)
class MetricSpec:
    """One signal of a device type."""

    name: str
    unit: str
    low: float  # physical bound: lower
    high: float  # physical bound: upper
    description: str
    failure_above: float | None = None  # the device fails when the signal rises above this
    failure_below: float | None = None  # ... or falls below this

    @property
    def degrades(self) -> bool:
        """Whether this signal has a failure limit (a target for failure prediction)."""
        return self.failure_above is not None or self.failure_below is not None


def _specs(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {s.name: s for s in specs}


# Failure limits are alarm levels of the kind device makers document; the exact numbers are
# twin-stream's defaults for the simulated fleet, not clinical guidance.
METRICS_BY_TYPE: Final[dict[str, dict[str, MetricSpec]]] = {
    DeviceType.INFUSION_PUMP: _specs(
        MetricSpec("flow_rate", "mL/h", 0, 1200, "delivered flow rate"),
        MetricSpec(
            "line_pressure", "mmHg", -100, 1500, "downstream line pressure", failure_above=600
        ),
        MetricSpec("motor_current", "A", 0, 3, "pumping motor current", failure_above=0.8),
        MetricSpec("battery", "%", 0, 100, "battery state of charge", failure_below=10),
    ),
    DeviceType.VENTILATOR: _specs(
        MetricSpec("tidal_volume", "mL", 0, 2500, "delivered tidal volume"),
        MetricSpec("airway_pressure", "cmH2O", -20, 120, "peak airway pressure"),
        MetricSpec("o2_percent", "%", 0, 100, "measured O2 concentration", failure_below=25),
        MetricSpec("turbine_temp", "degC", 0, 150, "blower turbine temperature", failure_above=85),
        MetricSpec(
            "filter_dp", "Pa", 0, 2000, "inlet filter differential pressure", failure_above=600
        ),
    ),
    DeviceType.PATIENT_MONITOR: _specs(
        MetricSpec("battery", "%", 0, 100, "battery state of charge", failure_below=10),
        MetricSpec("board_temp", "degC", 0, 100, "main board temperature", failure_above=70),
        MetricSpec(
            "sensor_dropout_rate", "1", 0, 1, "fraction of sensor samples lost", failure_above=0.3
        ),
        MetricSpec("signal_quality", "%", 0, 100, "sensor signal quality index", failure_below=40),
    ),
    DeviceType.DIALYSIS_MACHINE: _specs(
        MetricSpec("blood_pump_speed", "mL/min", 0, 600, "blood pump flow", failure_below=180),
        MetricSpec("tmp", "mmHg", -100, 600, "transmembrane pressure"),
        MetricSpec("conductivity", "mS/cm", 0, 25, "dialysate conductivity", failure_above=15.5),
        MetricSpec("dialysate_temp", "degC", 20, 45, "dialysate temperature", failure_above=39),
    ),
    DeviceType.MRI_CHILLER: _specs(
        MetricSpec("helium_level", "%", 0, 100, "magnet helium fill level", failure_below=40),
        MetricSpec(
            "compressor_temp", "degC", 0, 120, "helium compressor temperature", failure_above=90
        ),
        MetricSpec(
            "coldhead_temp", "K", 0, 80, "cold-head second stage temperature", failure_above=6
        ),
        MetricSpec("cooling_water_flow", "L/min", 0, 60, "chilled water flow", failure_below=8),
    ),
}


def fleet_device(index: int) -> tuple[str, DeviceType]:
    """The id and type of the ``index``-th device (from 1) of a fleet: types take turns.

    >>> [fleet_device(i)[0] for i in range(1, 7)]
    ['pump-0001', 'vent-0002', 'mon-0003', 'dial-0004', 'mri-0005', 'pump-0006']
    """
    device_type = list(DeviceType)[(index - 1) % len(DeviceType)]
    return f"{DEVICE_ID_PREFIX[device_type]}-{index:04d}", device_type


def metric_spec(device_type: str, metric: str) -> MetricSpec:
    """The spec of one metric of one device type (KeyError if there is none)."""
    return METRICS_BY_TYPE[device_type][metric]


def _metric_model(device_type: str, specs: dict[str, MetricSpec]) -> type[BaseModel]:
    # Every metric is optional per reading: ``null`` (or absent) means the sensor gave no value
    # this time (a dropout), which the twin counts as a data-quality event, not a fault.
    fields: dict[str, Any] = {
        name: (
            float | None,
            Field(
                default=None,
                ge=s.low,
                le=s.high,
                description=f"{s.description} [{s.unit}]",
                json_schema_extra={"unit": s.unit},
            ),
        )
        for name, s in specs.items()
    }
    name = "".join(part.title() for part in device_type.split("_")) + "Metrics"
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
    return create_model(name, __config__=config, **fields)


#: One pydantic model per device type, generated from METRICS_BY_TYPE so the two never disagree.
METRIC_MODELS: Final[dict[str, type[BaseModel]]] = {
    t: _metric_model(t, specs) for t, specs in METRICS_BY_TYPE.items()
}
