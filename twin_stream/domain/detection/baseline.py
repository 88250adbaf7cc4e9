"""The baseline of one signal: what is normal for this device, learned online.

An exponentially weighted mean and variance give a z-score per reading. Three things keep the
baseline honest:

* protection: a reading far outside the baseline updates it only as much as one at
  ``protect_z`` standard deviations would, so an anomaly does not become the new normal;
* seasonality: an offset per time-of-day bucket of the device's clock, learned once per visit
  of the bucket (the visit's mean offset, so one day counts once whatever the sample rate) and
  used only while it explains the signal better than the plain mean, judged on unprotected
  variances (a chiller's morning load is normal; a signal without a daily cycle keeps its
  plain baseline);
* range novelty: a value beyond everything seen so far, by a margin, is flagged (NAB's
  "spatial anomaly").

>>> from twin_stream.domain.detection.params import DetectorParams
>>> baseline = SignalBaseline(DetectorParams())
>>> for x in [10.0, 10.2, 9.8, 10.1, 9.9] * 40:
...     _ = baseline.update(x, 0)
>>> round(baseline.z(10.0, 0), 2), round(baseline.z(13.0, 0), 1)
(0.0, 21.2)
>>> baseline.novel(13.0), baseline.novel(10.1)
(True, False)
"""

from __future__ import annotations

import math

from twin_stream.domain.detection.params import DetectorParams

__all__ = ["SignalBaseline"]


class SignalBaseline:
    """Online, protected, seasonal baseline of one signal."""

    __slots__ = (
        "bucket",
        "count",
        "hi",
        "lo",
        "mean",
        "params",
        "raw_resid_var",
        "raw_var",
        "resid_var",
        "season",
        "seen",
        "var",
        "visit_n",
        "visit_sum",
    )

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self.count = 0
        self.mean = 0.0
        self.var = 0.0
        #: variance of the residual after the seasonal offset
        self.resid_var = 0.0
        #: per bucket: the offset from the mean, and how many visits (days) taught it
        self.season = [0.0] * params.season_buckets
        self.seen = [0] * params.season_buckets
        #: unprotected variances around the plain and the seasonal centre (the gate)
        self.raw_var = 0.0
        self.raw_resid_var = 0.0
        #: the bucket being visited now, and the sum and count of its offsets so far
        self.bucket: int | None = None
        self.visit_sum = 0.0
        self.visit_n = 0
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
            and self.raw_resid_var < p.season_gain * self.raw_var
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

    def _season(self, x: float, bucket: int, seasonal_center: float | None) -> None:
        p, a = self.params, self.params.fading
        if bucket != self.bucket:
            if self.bucket is not None and self.visit_n:
                # A visit ended: its mean offset teaches the bucket once, with 1/n weights up
                # to ``season_days`` visits, then a fixed share.
                done = self.bucket
                self.seen[done] += 1
                weight = 1.0 / min(self.seen[done], p.season_days)
                self.season[done] += weight * (self.visit_sum / self.visit_n - self.season[done])
            self.bucket, self.visit_sum, self.visit_n = bucket, 0.0, 0
        self.visit_sum += x - self.mean
        self.visit_n += 1
        d = x - self.mean
        self.raw_var = (1.0 - a) * (self.raw_var + a * d * d)
        if self.seen[bucket]:
            r = x - self.mean - self.season[bucket]
            self.raw_resid_var = (1.0 - a) * (self.raw_resid_var + a * r * r)
            if seasonal_center is not None:
                taught = x - seasonal_center
                limit = p.protect_z * max(math.sqrt(self.resid_var), 1e-12)
                if self.count >= 10 and abs(taught) > limit:
                    taught = math.copysign(limit, taught)
                self.resid_var = (1.0 - a) * (self.resid_var + a * taught * taught)
            else:
                self.resid_var = (1.0 - a) * (self.resid_var + a * r * r)
        else:
            self.raw_resid_var = (1.0 - a) * (self.raw_resid_var + a * d * d)

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
        if bucket is not None:
            # The time-of-day profile learns even while the device is out of control: a daily
            # pattern seen for the first time (a chiller's first morning) is out of control
            # until the profile knows it, and one day moves a bucket by at most 1/n.
            self._season(x, bucket, center if seasonal else None)
        if not learn:
            return z
        # 1/n weights until the horizon 1/fading, then the fixed fading factor: the first
        # readings do not leave the variance underestimated (as a fixed factor from the start
        # would: 78 % of it after 150 readings).
        a = max(1.0 / (self.count + 1), p.fading)
        d = taught - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.count += 1
        return z
