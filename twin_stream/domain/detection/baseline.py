"""The baseline of one signal: what is normal for this device, learned online.

An exponentially weighted mean and variance give a z-score per reading. Three things keep the
baseline honest:

* protection: a reading far outside the baseline updates it only as much as one at
  ``protect_z`` standard deviations would, so an anomaly does not become the new normal;
* seasonality: an offset per time-of-day bucket of the device's clock, used only while it
  explains the signal better than the plain mean (a chiller's morning warm-up is normal; a
  signal without a daily cycle keeps its plain baseline);
* range novelty: a value beyond everything seen so far, by a margin, is flagged (NAB's
  "spatial anomaly").

>>> from twin_stream.domain.detection.params import DetectorParams
>>> baseline = SignalBaseline(DetectorParams())
>>> for x in [10.0, 10.2, 9.8, 10.1, 9.9] * 40:
...     _ = baseline.update(x, 0)
>>> round(baseline.z(10.0, 0), 2), round(baseline.z(13.0, 0), 1)
(0.0, 22.8)
>>> baseline.novel(13.0), baseline.novel(10.1)
(True, False)
"""

from __future__ import annotations

import math

from twin_stream.domain.detection.params import DetectorParams

__all__ = ["SignalBaseline"]


class SignalBaseline:
    """Online, protected, seasonal baseline of one signal."""

    __slots__ = ("count", "hi", "lo", "mean", "params", "resid_var", "season", "seen", "var")

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self.count = 0
        self.mean = 0.0
        self.var = 0.0
        #: variance of the residual after the seasonal offset
        self.resid_var = 0.0
        self.season = [0.0] * params.season_buckets
        self.seen = [0] * params.season_buckets
        self.lo = math.inf
        self.hi = -math.inf

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def _seasonal(self, bucket: int | None) -> bool:
        p = self.params
        return (
            bucket is not None
            and self.seen[bucket] >= p.season_min_count
            and self.resid_var < p.season_gain * self.var
        )

    def center(self, bucket: int | None = None) -> float:
        """The expected value (at this time of day)."""
        if self._seasonal(bucket):
            return self.mean + self.season[bucket]  # type: ignore[index]
        return self.mean

    def scale(self, bucket: int | None = None) -> float:
        var = self.resid_var if self._seasonal(bucket) else self.var
        floor = self.params.min_relative_scale * (abs(self.mean) + 1.0)
        return max(math.sqrt(var), floor)

    def z(self, x: float, bucket: int | None = None) -> float:
        """How many standard deviations ``x`` is from the baseline (0 before any data)."""
        if self.count == 0:
            return 0.0
        return (x - self.center(bucket)) / self.scale(bucket)

    def novel(self, x: float) -> bool:
        """Whether ``x`` lies beyond every value seen so far by more than the tolerance."""
        span = self.hi - self.lo
        if not span > 0.0:
            return False
        margin = self.params.range_tolerance * span
        return x > self.hi + margin or x < self.lo - margin

    def update(self, x: float, bucket: int | None = None, learn: bool = True) -> float:
        """Learn one value; return its z-score against the baseline *before* learning it.

        With ``learn=False`` only the range is learned (the device is out of control: its
        readings are not taken as the normal).
        """
        p = self.params
        if self.count == 0:
            self.mean, self.lo, self.hi = x, x, x
            self.count = 1
            return 0.0
        seasonal = self._seasonal(bucket)
        center = self.mean + self.season[bucket] if seasonal else self.mean  # type: ignore[index]
        var = self.resid_var if seasonal else self.var
        scale = max(math.sqrt(var), p.min_relative_scale * (abs(self.mean) + 1.0))
        z = (x - center) / scale
        taught = x
        if abs(z) > p.protect_z and self.count >= 10:
            taught = center + math.copysign(p.protect_z * scale, z)
        if x < self.lo:
            self.lo = x
        elif x > self.hi:
            self.hi = x
        if not learn:
            return z
        a = p.fading
        if bucket is not None:
            offset = taught - self.mean
            if self.seen[bucket]:
                residual = offset - self.season[bucket]
                self.resid_var = (1.0 - a) * (self.resid_var + a * residual * residual)
                self.season[bucket] += p.season_fading * residual
            else:
                self.season[bucket] = offset
            self.seen[bucket] += 1
        d = taught - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.count += 1
        return z
