"""Building blocks of realistic device signals: daily patterns, lagged responses, noise.

>>> import random
>>> lag = Lagged(value=20.0, tau_s=60.0)
>>> round(lag.step(target=30.0, dt=60.0), 2)  # one time constant: 63% of the way
26.32
>>> round(daily(hours=14.0, amplitude=2.0, peak_hour=14.0), 2)
2.0
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Lagged", "ModeSchedule", "daily", "hour_of_day"]


def hour_of_day(t_s: float, start_hour: float = 0.0) -> float:
    """The hour of the day (0-24) at ``t_s`` seconds after a start at ``start_hour``."""
    return (start_hour + t_s / 3600.0) % 24.0


def daily(hours: float, amplitude: float, peak_hour: float) -> float:
    """A daily cycle: ``amplitude`` at ``peak_hour``, ``-amplitude`` twelve hours later."""
    return amplitude * math.cos(2 * math.pi * (hours - peak_hour) / 24.0)


@dataclass
class Lagged:
    """A first-order lag: a temperature or pressure that follows its target with inertia.

    Without a starting ``value`` it starts at its first target: a device that has been running
    for a while, not one warming up from cold at the start of every simulation.
    """

    value: float | None = None
    tau_s: float = 60.0

    def step(self, target: float, dt: float) -> float:
        if self.value is None:
            self.value = target
        self.value += (target - self.value) * (1.0 - math.exp(-dt / self.tau_s))
        return self.value


class ModeSchedule:
    """Operating modes that follow each other with random durations (a duty cycle).

    ``modes`` maps a mode to ``(min_hours, max_hours, weight)``; after one mode ends the next
    is drawn by weight among the others.
    """

    def __init__(
        self, modes: dict[str, tuple[float, float, float]], rng: random.Random, first: str
    ) -> None:
        self.modes = modes
        self.rng = rng
        self.mode = first
        self.until_s = self._duration(first)

    def _duration(self, mode: str) -> float:
        low, high, _ = self.modes[mode]
        return self.rng.uniform(low, high) * 3600.0

    def at(self, t_s: float) -> str:
        while t_s >= self.until_s:
            others = [m for m in self.modes if m != self.mode]
            self.mode = self.rng.choices(others, weights=[self.modes[m][2] for m in others])[0]
            self.until_s += self._duration(self.mode)
        return self.mode
