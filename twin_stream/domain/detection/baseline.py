"""The baseline of one signal: what is normal for this device, learned online.

An exponentially weighted mean and variance (River's ``stats.EWMean`` / ``stats.EWVar``) give a
robust z-score per reading. Two guards keep the baseline honest:

* protection: a reading far outside the baseline updates it only as much as one at
  ``protect_z`` standard deviations would, so an anomaly does not become the new normal;
* drift: ADWIN (River's ``drift.ADWIN``) watches the signal; when it detects a lasting change
  (a new normal after maintenance, a new operating point), the baseline re-learns quickly.

>>> from twin_stream.domain.detection.params import DetectorParams
>>> baseline = SignalBaseline(DetectorParams())
>>> for x in [10.0, 10.2, 9.8, 10.1, 9.9] * 40:
...     _ = baseline.update(x)
>>> round(baseline.z(10.0), 2), round(baseline.z(13.0), 1)
(0.0, 22.8)
"""

from __future__ import annotations

import math

from river import drift, stats

from twin_stream.domain.detection.params import DetectorParams

__all__ = ["SignalBaseline"]


class SignalBaseline:
    """Online, protected, drift-aware baseline of one signal."""

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self._reset_center()
        self.var = stats.EWVar(fading_factor=params.fading)
        self.adwin = drift.ADWIN(delta=params.adwin_delta)
        self.count = 0
        self.relearn_left = 0
        self.drifts = 0

    @property
    def center(self) -> float:
        return float(self.fast_mean.get() if self.relearn_left else self.mean.get())

    @property
    def scale(self) -> float:
        # The noise level outlives a change of level: after a drift only the centre is
        # re-learned, so the first readings of the new normal are not scored against ~0 spread.
        floor = self.params.min_relative_scale * (abs(self.center) + 1.0)
        return max(math.sqrt(max(self.var.get(), 0.0)), floor)

    def z(self, x: float) -> float:
        """How many standard deviations ``x`` is from the baseline (0 before any data)."""
        if self.count == 0:
            return 0.0
        return (x - self.center) / self.scale

    def _reset_center(self) -> None:
        self.mean = stats.EWMean(fading_factor=self.params.fading)
        self.fast_mean = stats.EWMean(fading_factor=self.params.relearn_fading)

    def update(self, x: float) -> float:
        """Learn one value; return its z-score against the baseline *before* learning it."""
        z = self.z(x)
        limit = self.params.protect_z
        taught = x
        if abs(z) > limit and self.count >= 10:
            taught = self.center + math.copysign(limit * self.scale, z)
        self.adwin.update(x)
        if self.adwin.drift_detected and self.count > 30:
            # A lasting change: forget the old normal and learn the new one from the fast
            # statistics for a while, so it is learned without an alert storm.
            self.drifts += 1
            self.relearn_left = self.params.relearn_readings
            self._reset_center()
        if self.relearn_left:
            taught = x  # no protection while re-learning: the new level is the normal now
            self.relearn_left -= 1
        for stat in (self.mean, self.var, self.fast_mean):
            stat.update(taught)
        self.count += 1
        return z
