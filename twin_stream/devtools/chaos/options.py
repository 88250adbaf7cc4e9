"""A chaos run's options (the load, the faults, the timings) and what follows from them alone:
the fleet it simulates (:func:`chaos_plan`) and the command that repeats it
(:func:`chaos_command`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulators.fleet import FleetPlan
from twin_stream.devtools.chaos.faults import DEFAULT_FAULTS, FaultTiming

__all__ = ["ChaosOptions", "chaos_command", "chaos_plan"]


@dataclass(frozen=True)
class ChaosOptions:
    """One chaos run. The defaults are the full run; the CI test runs a shorter load."""

    faults: tuple[str, ...] = DEFAULT_FAULTS
    devices: int = 50
    rate: float = 200.0  # readings/s of the whole fleet
    timing: FaultTiming = FaultTiming()
    #: Steady load before each fault (also after the last one, before the fleet stops).
    settle_s: float = 20.0
    #: How long to wait for scoring and storing to resume after a fault before moving on.
    recovery_timeout_s: float = 180.0
    startup_timeout_s: float = 300.0
    drain_timeout_s: float = 300.0
    #: ...and stops waiting when nothing more was scored or stored for this long.
    drain_quiet_s: float = 30.0
    #: The simulated fleet: its physics run this much faster than the clock (degradations and
    #: sensor faults show within the run and open alerts), a fifth of it faulty.
    speed: float = 120.0
    fault_fraction: float = 0.2
    seed: int = 7
    workdir: Path = Path(".twin-stream/chaos")
    #: Recovery target after a worker restart (issue 14): scoring resumes within this.
    worker_target_s: float = 15.0

    @property
    def rate_hz(self) -> float:
        """Readings/s of each device."""
        return self.rate / self.devices

    def expected_s(self) -> float:
        per_fault = self.settle_s + self.timing.outage_s + 45.0
        return 90.0 + len(self.faults) * per_fault + self.settle_s + 60.0


def chaos_command(options: ChaosOptions, fault: str | None = None) -> str:
    """The command that runs ``fault`` (or the whole run) with these options' load."""
    which = f" --faults {fault}" if fault else ""
    return f"twin-stream chaos{which} --devices {options.devices} --rate {options.rate:g}"


def chaos_plan(options: ChaosOptions) -> FleetPlan:
    """The fleet: a fifth of it with a degradation or a sensor fault that opens alerts during
    the run. The simulator's network faults are left out: a device offline on its own would
    blur what the platform lost and when it recovered."""
    plan = FleetPlan.generate(
        options.devices,
        hours=options.expected_s() * options.speed / 3600.0,
        fault_fraction=options.fault_fraction,
        seed=options.seed,
        start_hour=12.0,
    )
    for device in plan.devices:
        device.faults = [f for f in device.faults if f.category != "connectivity"]
    return plan
