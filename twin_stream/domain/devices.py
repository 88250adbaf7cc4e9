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

Each device type also has the *settings* desired state may change, each with its unit and the
range the platform accepts (:data:`SETTINGS_BY_TYPE`). The twin API and the simulated devices
check a change with :func:`check_settings`; a setting a type does not have is refused too:

>>> [v.reason for v in check_settings("infusion_pump", {"rate": 1500.0})]
["rate: 1500 mL/h is outside an infusion_pump's range of 0.1 to 999 mL/h [out_of_range]"]
>>> check_settings("patient_monitor", {"rate": 20.0})[0].detail()["error"]
'a patient_monitor has no rate (its settings: sample_interval_s, maintenance_epoch)'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = [
    "DEVICE_ID_PREFIX",
    "METRICS_BY_TYPE",
    "METRIC_MODELS",
    "SETTINGS_BY_TYPE",
    "DeviceType",
    "MetricSpec",
    "SettingSpec",
    "SettingViolation",
    "check_settings",
    "fleet_device",
    "metric_spec",
    "setting_envelope",
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


# -- settings: what desired state may change, per device type -----------------------------------


@dataclass(frozen=True)
class SettingSpec:
    """One setting of a device type that desired state may change: its unit and the range the
    platform accepts for it (both ends included)."""

    name: str
    unit: str
    low: float
    high: float
    description: str
    integer: bool = False  # a count, not a measure: whole numbers only


_SAMPLE_INTERVAL: Final = SettingSpec(
    "sample_interval_s", "s", 0.01, 3600, "seconds between readings"
)
_MAINTENANCE_EPOCH: Final = SettingSpec(
    "maintenance_epoch",
    "1",
    0,
    2**31 - 1,
    "completed maintenance count (raising it records a maintenance)",
    integer=True,
)


def _settings(rate: SettingSpec | None) -> dict[str, SettingSpec]:
    specs = ([rate] if rate is not None else []) + [_SAMPLE_INTERVAL, _MAINTENANCE_EPOCH]
    return {s.name: s for s in specs}


# The rate ranges are those of the device types' usual makes (a large-volume infusion pump
# 0.1-999 mL/h, a critical-care ventilator 4-60 breaths/min, a CRRT blood pump 50-450 mL/min,
# an MRI chiller's water loop 10-40 L/min, above its 8 L/min failure limit): twin-stream's
# defaults for the simulated fleet, not clinical guidance. A make may allow less: the device
# refuses what it cannot do (its ack says why).
SETTINGS_BY_TYPE: Final[dict[str, dict[str, SettingSpec]]] = {
    DeviceType.INFUSION_PUMP: _settings(
        SettingSpec("rate", "mL/h", 0.1, 999, "infusion flow rate")
    ),
    DeviceType.VENTILATOR: _settings(
        SettingSpec("rate", "1/min", 4, 60, "set respiratory rate (breaths per minute)")
    ),
    DeviceType.PATIENT_MONITOR: _settings(None),
    DeviceType.DIALYSIS_MACHINE: _settings(
        SettingSpec("rate", "mL/min", 50, 450, "blood pump flow")
    ),
    DeviceType.MRI_CHILLER: _settings(SettingSpec("rate", "L/min", 10, 40, "chilled water flow")),
}
_ALL_SETTINGS: Final = tuple(dict.fromkeys(n for specs in SETTINGS_BY_TYPE.values() for n in specs))


def setting_envelope(name: str) -> tuple[float, float]:
    """The widest range of one setting over every device type that has it (the wire schema's
    bounds; each type's own range is narrower or equal).

    >>> setting_envelope("rate")
    (0.1, 999)
    """
    specs = [s[name] for s in SETTINGS_BY_TYPE.values() if name in s]
    return min(s.low for s in specs), max(s.high for s in specs)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _article(device_type: str) -> str:
    return ("an " if device_type[:1] in "aeiou" else "a ") + device_type


@dataclass(frozen=True)
class SettingViolation:
    """Why one setting of a desired-state change is refused: ``rule`` is ``out_of_range``,
    ``not_a_number``, ``not_an_integer``, ``not_a_setting`` (the type has no such setting) or
    ``unknown_setting`` (no type has)."""

    field: str
    got: Any
    rule: str
    message: str
    spec: SettingSpec | None = None

    @property
    def reason(self) -> str:
        """The dead letter's form: the field, the message and the rule in brackets."""
        return f"{self.field}: {self.message} [{self.rule}]"

    def detail(self) -> dict[str, Any]:
        """The twin API's form: the field, its range and unit (null if it has none), what was
        asked and why it is refused."""
        spec = self.spec
        return {
            "field": self.field,
            "min": spec.low if spec else None,
            "max": spec.high if spec else None,
            "unit": spec.unit if spec else None,
            "got": self.got,
            "error": self.message,
        }


def _check_one(device_type: str, spec: SettingSpec, value: Any) -> SettingViolation | None:
    def refused(rule: str, message: str) -> SettingViolation:
        return SettingViolation(spec.name, value, rule, message, spec)

    if isinstance(value, bool) or not isinstance(value, int | float):
        return refused("not_a_number", f"{value!r} is not a number")
    if spec.integer and not isinstance(value, int):
        return refused("not_an_integer", f"{value!r} is not a whole number")
    if value != value or not spec.low <= value <= spec.high:  # NaN is never in range
        unit = "" if spec.unit == "1" else f" {spec.unit}"
        return refused(
            "out_of_range",
            f"{_number(value)}{unit} is outside {_article(device_type)}'s range of "
            f"{_number(spec.low)} to {_number(spec.high)}{unit}",
        )
    return None


def check_settings(device_type: str, settings: Mapping[str, Any]) -> list[SettingViolation]:
    """Every setting of a desired-state change that ``device_type`` does not accept, in the
    order given; an empty list if the change is within the type's ranges. A ``None`` value
    asks for no change and is never refused.

    >>> check_settings("ventilator", {"rate": 14.0, "sample_interval_s": 2.0})
    []
    >>> [v.rule for v in check_settings("mri_chiller", {"rate": "fast", "colour": "red"})]
    ['not_a_number', 'unknown_setting']
    """
    specs = SETTINGS_BY_TYPE.get(device_type, {})
    violations = []
    for name, value in settings.items():
        if value is None:
            continue
        spec = specs.get(name)
        if spec is not None:
            violation = _check_one(device_type, spec, value)
            if violation is not None:
                violations.append(violation)
        elif name in _ALL_SETTINGS:
            has = ", ".join(specs) or "none"
            violations.append(
                SettingViolation(
                    name,
                    value,
                    "not_a_setting",
                    f"{_article(device_type)} has no {name} (its settings: {has})",
                )
            )
        else:
            violations.append(
                SettingViolation(
                    name,
                    value,
                    "unknown_setting",
                    f"not a setting (settings: {', '.join(_ALL_SETTINGS)})",
                )
            )
    return violations
