"""Signal models of the five device types: what a healthy device reports, mode by mode.

Each model keeps its own physical state (temperatures with inertia, battery charge, operating
mode) and returns one reading per call of :meth:`DeviceModel.sample`. Faults are applied on top
by :class:`simulators.device.SimulatedDevice`.

>>> import random
>>> pump = InfusionPumpModel(random.Random(1), rate=100.0)
>>> reading = pump.sample(t_s=60.0, dt=1.0)
>>> sorted(reading)
['battery', 'flow_rate', 'line_pressure', 'motor_current']
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import ClassVar

from simulators.signals import Lagged, ModeSchedule, daily, hour_of_day
from twin_stream.domain.devices import DeviceType

__all__ = [
    "MODELS",
    "DeviceModel",
    "DialysisMachineModel",
    "InfusionPumpModel",
    "MriChillerModel",
    "PatientMonitorModel",
    "VentilatorModel",
]

Reading = dict[str, float | None]


class DeviceModel(ABC):
    """The healthy behaviour of one device."""

    device_type: ClassVar[DeviceType]
    #: Typical healthy value of each degrading signal: a fault moves it from here to its limit.
    nominal: dict[str, float]
    #: Operating rates the device may start with (None: the device has no rate).
    rates: ClassVar[tuple[float, ...] | None] = None
    #: The rates this make can run at, if narrower than its type's range
    #: (:data:`twin_stream.domain.devices.SETTINGS_BY_TYPE`): it refuses a rate outside them.
    rate_limits: ClassVar[tuple[float, float] | None] = None

    def __init__(
        self, rng: random.Random, rate: float | None = None, start_hour: float = 0.0
    ) -> None:
        self.rng = rng
        self.rate = rate if rate is not None or self.rates is None else rng.choice(self.rates)
        #: Local time of day when the run starts: the whole fleet shares one clock, so every
        #: MRI scanner's working day starts at the same hour.
        self.start_hour = start_hour

    def hour(self, t_s: float) -> float:
        return hour_of_day(t_s, self.start_hour)

    def noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma)

    @abstractmethod
    def sample(self, t_s: float, dt: float) -> Reading:
        """Advance the physics by ``dt`` seconds to ``t_s`` and read every sensor."""


class _Battery:
    """Charge on mains, drain on battery (transport); state of charge in %."""

    def __init__(self, rng: random.Random) -> None:
        self.charge = rng.uniform(85, 100)

    def step(self, on_battery: bool, dt: float, drain_per_h: float) -> float:
        if on_battery:
            self.charge -= drain_per_h * dt / 3600.0
        else:
            self.charge += 30.0 * dt / 3600.0  # ~30 %/h on the charger
        self.charge = min(100.0, max(0.0, self.charge))
        return self.charge


class InfusionPumpModel(DeviceModel):
    """Infusions of a few hours, pauses between bags, transports on battery."""

    device_type = DeviceType.INFUSION_PUMP
    rates = (25.0, 50.0, 80.0, 125.0, 200.0)
    rate_limits = (0.1, 500.0)  # a volumetric pump of this make: up to 500 mL/h

    def __init__(
        self, rng: random.Random, rate: float | None = None, start_hour: float = 0.0
    ) -> None:
        super().__init__(rng, rate, start_hour)
        self.modes = ModeSchedule(
            {"infusing": (2, 8, 6), "paused": (0.1, 1, 3), "transport": (0.2, 0.8, 1)},
            rng,
            "infusing",
        )
        self.pressure = Lagged(tau_s=20.0)
        self.battery = _Battery(rng)
        self.nominal = {"line_pressure": 60.0, "motor_current": 0.25, "battery": 97.0}

    def sample(self, t_s: float, dt: float) -> Reading:
        mode = self.modes.at(t_s)
        running = mode in ("infusing", "transport")
        rate = self.rate or 0.0
        flow = rate * (1 + self.noise(0.01)) if running else 0.0
        pressure = self.pressure.step(25.0 + 0.3 * flow, dt) + self.noise(2.0)
        current = (0.18 + 0.0006 * flow if running else 0.03) + self.noise(0.008)
        battery = self.battery.step(mode == "transport", dt, drain_per_h=12.0)
        return {
            "flow_rate": max(flow, 0.0),
            "line_pressure": pressure,
            "motor_current": max(current, 0.0),
            "battery": battery,
        }


class VentilatorModel(DeviceModel):
    """Ventilating a patient or on standby between patients; filter loads slowly over weeks."""

    device_type = DeviceType.VENTILATOR
    rates = (12.0, 14.0, 16.0, 18.0, 20.0)  # breaths per minute

    def __init__(
        self, rng: random.Random, rate: float | None = None, start_hour: float = 0.0
    ) -> None:
        super().__init__(rng, rate, start_hour)
        self.modes = ModeSchedule(
            {"ventilating": (6, 48, 5), "standby": (0.5, 4, 1)}, rng, "ventilating"
        )
        self.o2_setpoint = rng.choice((30.0, 35.0, 40.0, 50.0))
        self.tidal_setpoint = rng.uniform(380, 520)
        self.turbine = Lagged(tau_s=900.0)
        self.filter_age_h = rng.uniform(0, 500)
        self.nominal = {"o2_percent": self.o2_setpoint, "turbine_temp": 50.0, "filter_dp": 170.0}

    def sample(self, t_s: float, dt: float) -> Reading:
        ventilating = self.modes.at(t_s) == "ventilating"
        load = (self.rate or 14.0) / 14.0 if ventilating else 0.2
        ambient = 22.0 + daily(self.hour(t_s), 1.5, 15.0)
        turbine = self.turbine.step(ambient + 18.0 + 10.0 * load, dt) + self.noise(0.3)
        filter_dp = 140.0 + 0.06 * (self.filter_age_h + t_s / 3600.0) + self.noise(4.0)
        return {
            "tidal_volume": max(self.tidal_setpoint + self.noise(15.0), 0.0)
            if ventilating
            else 0.0,
            "airway_pressure": 18.0 + self.noise(1.5) if ventilating else max(self.noise(0.3), 0),
            # No gas is delivered on standby: there is no O2 concentration to report.
            "o2_percent": self.o2_setpoint + self.noise(0.4) if ventilating else None,
            "turbine_temp": turbine,
            "filter_dp": filter_dp if ventilating else 0.25 * filter_dp,
        }


class PatientMonitorModel(DeviceModel):
    """Device health only (no clinical data): battery, board temperature, sensor link quality."""

    device_type = DeviceType.PATIENT_MONITOR

    def __init__(
        self, rng: random.Random, rate: float | None = None, start_hour: float = 0.0
    ) -> None:
        super().__init__(rng, rate, start_hour)
        self.modes = ModeSchedule({"bedside": (4, 24, 5), "transport": (0.2, 1, 1)}, rng, "bedside")
        self.board = Lagged(tau_s=600.0)
        self.battery = _Battery(rng)
        self.nominal = {
            "battery": 97.0,
            "board_temp": 39.0,
            "sensor_dropout_rate": 0.01,
            "signal_quality": 92.0,
        }

    def sample(self, t_s: float, dt: float) -> Reading:
        transport = self.modes.at(t_s) == "transport"
        hour = self.hour(t_s)
        board = self.board.step(38.0 + daily(hour, 1.5, 15.0), dt) + self.noise(0.15)
        # Patients move more by day: more motion artefacts, more lost samples.
        dropout = max(0.0, 0.01 + 0.005 * (1 + daily(hour, 1.0, 11.0)) + self.noise(0.003))
        quality = 96.0 - 150.0 * dropout + self.noise(1.0)
        return {
            "battery": self.battery.step(transport, dt, drain_per_h=15.0),
            "board_temp": board,
            "sensor_dropout_rate": min(dropout, 1.0),
            "signal_quality": max(min(quality, 100.0), 0.0),
        }


class DialysisMachineModel(DeviceModel):
    """Continuous renal replacement therapy: the blood pump runs for days, filters age."""

    device_type = DeviceType.DIALYSIS_MACHINE
    rates = (200.0, 250.0, 300.0)  # blood flow mL/min

    def __init__(
        self, rng: random.Random, rate: float | None = None, start_hour: float = 0.0
    ) -> None:
        super().__init__(rng, rate, start_hour)
        self.filter_hours = rng.uniform(0, 60)  # filters are changed every ~72 h
        self.temp = Lagged(tau_s=300.0)
        self.nominal = {
            "blood_pump_speed": self.rate or 250.0,
            "conductivity": 14.0,
            "dialysate_temp": 36.8,
        }

    def sample(self, t_s: float, dt: float) -> Reading:
        rate = self.rate or 250.0
        self.nominal["blood_pump_speed"] = rate
        age = (self.filter_hours + t_s / 3600.0) % 72.0  # TMP climbs as the filter clogs
        return {
            "blood_pump_speed": rate + self.noise(2.0),
            "tmp": 60.0 + 1.2 * age + 0.1 * rate + self.noise(4.0),
            "conductivity": 14.0 + self.noise(0.04),
            "dialysate_temp": self.temp.step(36.8 + daily(self.hour(t_s), 0.1, 15.0), dt)
            + self.noise(0.05),
        }


class MriChillerModel(DeviceModel):
    """Compressor load follows the scanner's day; cold head and helium hold steady when healthy."""

    device_type = DeviceType.MRI_CHILLER
    rates = (18.0, 20.0, 22.0)  # chilled water flow L/min

    def __init__(
        self, rng: random.Random, rate: float | None = None, start_hour: float = 0.0
    ) -> None:
        super().__init__(rng, rate, start_hour)
        self.compressor = Lagged(tau_s=1200.0)
        self.helium = rng.uniform(70, 80)
        self.nominal = {
            "helium_level": self.helium,
            "compressor_temp": 58.0,
            "coldhead_temp": 4.2,
            "cooling_water_flow": self.rate or 20.0,
        }

    def sample(self, t_s: float, dt: float) -> Reading:
        hour = self.hour(t_s)
        scanning = 7.0 <= hour < 21.0  # the scanner's working day loads the compressor
        compressor = self.compressor.step(58.0 + (9.0 if scanning else 0.0), dt)
        flow = self.rate or 20.0
        self.nominal["cooling_water_flow"] = flow
        return {
            "helium_level": self.helium + self.noise(0.03),
            "compressor_temp": compressor + self.noise(0.4),
            "coldhead_temp": 4.2 + self.noise(0.02),
            "cooling_water_flow": flow + daily(hour, 0.8, 14.0) + self.noise(0.3),
        }


MODELS: dict[str, type[DeviceModel]] = {
    m.device_type: m
    for m in (
        InfusionPumpModel,
        VentilatorModel,
        PatientMonitorModel,
        DialysisMachineModel,
        MriChillerModel,
    )
}
