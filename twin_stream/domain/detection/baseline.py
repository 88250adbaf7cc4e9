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
from collections.abc import Mapping

from twin_stream.domain.detection.params import DetectorParams

__all__ = ["SignalBaseline", "deseasonalized"]


class SignalBaseline:
    """Online, protected, seasonal baseline of one signal."""

    __slots__ = (
        "bucket",
        "count",
        "hi",
        "lo",
        "mean",
        "params",
        "season",
        "season_n",
        "season_res",
        "season_var",
        "seen",
        "var",
        "last_center",
        "level",
        "visit_n",
        "visit_shift",
        "visit_sq",
        "visit_sum",
        "visits",
    )

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self.count = 0
        self.mean = 0.0
        self.var = 0.0
        buckets = params.season_buckets
        #: per bucket: the offset from the mean, and how many visits (days) taught it
        self.season = [0.0] * buckets
        self.seen = [0] * buckets
        #: per bucket: readings, mean square deviation from the plain mean (unprotected) and
        #: from the seasonal centre (protected). The profile is used in a bucket where it
        #: explains that bucket's readings: the morning of a chiller, not its quiet night.
        self.season_n = [0] * buckets
        self.season_var = [0.0] * buckets
        self.season_res = [0.0] * buckets
        #: the bucket being visited now, and the sum and count of its offsets so far
        self.bucket: int | None = None
        self.visit_shift = 0.0
        self.visit_sum = 0.0
        self.visit_sq = 0.0
        self.visit_n = 0
        #: the daily level the offsets are taken from, and how many visits taught it
        self.level = 0.0
        self.visits = 0
        #: the centre the last reading was scored against (its explanation's "baseline")
        self.last_center = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def seasonal(self, bucket: int | None) -> bool:
        """Whether the time-of-day profile is in use in ``bucket`` (it explains the signal)."""
        p = self.params
        return (
            bucket is not None
            and self.seen[bucket] >= p.season_min_count
            and self.season_res[bucket] < p.season_gain * self.season_var[bucket]
        )

    def center(self, bucket: int | None = None) -> float:
        """The expected value (at this time of day)."""
        if self.seasonal(bucket):
            return self.level + self.season[bucket]  # type: ignore[index]
        return self.mean

    def scale(self, bucket: int | None = None) -> float:
        var = self.season_res[bucket] if self.seasonal(bucket) else self.var  # type: ignore[index]
        floor = self.params.min_relative_scale * (abs(self.mean) + 1.0)
        return max(math.sqrt(var), floor)

    def offset(self, bucket: int | None) -> float:
        """The learned offset of this time of day (0 before a visit taught it)."""
        return self.season[bucket] if bucket is not None and self.seen[bucket] else 0.0

    def z(self, x: float, bucket: int | None = None) -> float:
        """How many standard deviations ``x`` is from the baseline (0 before any data)."""
        if self.count == 0:
            return 0.0
        return (x - self.center(bucket)) / self.scale(bucket)

    def novel(self, x: float, lo: float | None = None, hi: float | None = None) -> bool:
        """Whether ``x`` lies beyond every value seen so far by more than the tolerance (or
        beyond ``lo`` .. ``hi``: the range as it was before ``x`` was learned)."""
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        span = hi - lo
        if not span > 0.0:
            return False
        margin = self.params.range_tolerance * span
        return x > hi + margin or x < lo - margin

    def _end_visit(self, done: int) -> None:
        """A visit of bucket ``done`` ended: its mean teaches the daily level and the bucket's
        offset from it once (1/n weights up to ``season_days`` visits, then a fixed share).

        The offsets are taken from a level that moves over a day (the mean of the last
        ``season_buckets`` visits), not from the baseline's mean, which follows the signal
        within hours and would hide the daily shape.
        """
        p = self.params
        mean = self.visit_sum / self.visit_n
        visit_mean = self.visit_shift + mean
        self.visits += 1
        if self.visits == 1:
            self.level = visit_mean
        else:
            self.level += (visit_mean - self.level) / min(self.visits, p.season_buckets)
        self.seen[done] += 1
        weight = 1.0 / min(self.seen[done], p.season_days)
        self.season[done] += weight * (visit_mean - self.level - self.season[done])
        if self.seen[done] == 1:
            # The first visit's spread around its own mean is the residual variance the
            # profile would have had (so day two can already use it).
            self.season_res[done] = max(self.visit_sq / self.visit_n - mean * mean, 0.0)

    def update(
        self, x: float, bucket: int | None = None, learn: bool = True, protect: bool = True
    ) -> float:
        """Learn one value; return its z-score against the baseline *before* learning it.

        With ``learn=False`` only the range is learned (the device is out of control: its
        readings are not taken as the normal). With ``protect=False`` a value beyond
        ``protect_z`` sd is learned as it is (a new normal being adopted).
        """
        p = self.params
        count, mean = self.count, self.mean
        if count == 0:
            self.mean, self.lo, self.hi, self.last_center = x, x, x, x
            self.count = 1
            return 0.0
        # The centre and the variance: the seasonal ones where the profile is in use (as
        # ``center`` and ``scale`` say, written out here: this runs for every signal of every
        # reading).
        if (
            bucket is not None
            and self.seen[bucket] >= p.season_min_count
            and self.season_res[bucket] < p.season_gain * self.season_var[bucket]
        ):
            center = self.level + self.season[bucket]
            var = self.season_res[bucket]
        else:
            center, var = mean, self.var
        scale = math.sqrt(var)
        floor = p.min_relative_scale * (abs(mean) + 1.0)
        if scale < floor:
            scale = floor
        self.last_center = center
        z = (x - center) / scale
        taught = x
        if protect and abs(z) > p.protect_z and count >= 10:
            taught = center + math.copysign(p.protect_z * scale, z)
        if x < self.lo:
            self.lo = x
        elif x > self.hi:
            self.hi = x
        if bucket is not None:
            # The time-of-day profile learns even while the device is out of control: a daily
            # pattern seen for the first time (a chiller's first morning) is out of control
            # until the profile knows it, and one day moves a bucket by at most 1/n.
            if bucket != self.bucket:
                if self.bucket is not None and self.visit_n:
                    self._end_visit(self.bucket)
                self.bucket, self.visit_shift = bucket, x
                self.visit_sum, self.visit_sq, self.visit_n = 0.0, 0.0, 0
            shifted = x - self.visit_shift  # shifted sums: no cancellation at large values
            self.visit_sum += shifted
            self.visit_sq += shifted * shifted
            self.visit_n += 1
            # The bucket's variances about the plain mean (unprotected) and about the seasonal
            # centre (protected), with 1/n weights up to the horizon as the mean's.
            d = x - mean
            n = self.season_n[bucket] = self.season_n[bucket] + 1
            b = 1.0 / n if n * p.fading < 1.0 else p.fading
            season_var = self.season_var
            plain = season_var[bucket] = season_var[bucket] + b * (d * d - season_var[bucket])
            if self.seen[bucket]:
                res = self.season_res[bucket]
                r = x - self.level - self.season[bucket]
                r2 = r * r
                # |r| beyond protect_z residual sd (squared: no square root per reading)
                if n > 10 and r2 > p.protect_z * p.protect_z * res:
                    r2 = p.protect_z * p.protect_z * res
                self.season_res[bucket] = res + b * (r2 - res)
            else:
                self.season_res[bucket] = plain
        if not learn:
            return z
        # 1/n weights until the horizon 1/fading, then the fixed fading factor: the first
        # readings do not leave the variance underestimated (as a fixed factor from the start
        # would: 78 % of it after 150 readings).
        a = 1.0 / (count + 1) if (count + 1) * p.fading < 1.0 else p.fading
        d = taught - mean
        self.mean = mean + a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.count = count + 1
        return z


def deseasonalized(
    name: str, value: float | None, profiles: Mapping[str, SignalBaseline], bucket: int
) -> float | None:
    """``value`` without its time-of-day offset in ``bucket``, where the profile explains the
    signal."""
    if value is not None:
        profile = profiles.get(name)
        if profile is not None and profile.seasonal(bucket):
            return value - profile.season[bucket]
    return value
