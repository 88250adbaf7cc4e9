"""Failure prediction: when will a degrading signal cross its failure limit?

For each signal with a failure limit (``twin_stream.domain.devices``), readings are summarised
per bucket of ``BUCKET_READINGS`` readings by a quantile on the failing side (the 90th
percentile for a limit above, the 10th for a limit below), so that pauses and duty cycles do not
look like trends. A least-squares line through the last ``WINDOW_BUCKETS`` summaries, on their
real timestamps, gives the trend and its standard error. The predicted time to failure is
``(limit - level) / trend`` when the trend points at the limit and is significant (more than
``MIN_TREND_Z`` standard errors from zero), with a band from ``trend ± 2 s.e.``.

A prediction is only made once the signal has left its own long-run baseline by a noticeable
part of the way to the limit (``min_progress``), so a daily swing is not extrapolated into a
failure.

>>> from datetime import datetime, timedelta, timezone
>>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> p = TrendPredictor("infusion_pump")
>>> out = []
>>> for i in range(24 * 60):  # a day of readings, one a minute; the current creeps up after 8 h
...     wear = max(0.0, (i - 480) / 60) * 0.03
...     out += p.update(t0 + timedelta(minutes=i), {"motor_current": 0.25 + wear})
>>> last = out[-1]
>>> last.metric, round(last.trend_per_h, 3), last.time_to_failure_h is not None
('motor_current', 0.03, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from river import stats

from twin_stream.domain.detection.baseline import SignalBaseline
from twin_stream.domain.detection.state import RestoresByAttribute
from twin_stream.domain.devices import METRICS_BY_TYPE, MetricSpec

__all__ = ["SignalTrend", "TrendPredictor", "TrendReport", "least_squares"]

#: Buckets of this many readings summarise a signal.
BUCKET_READINGS = 10
#: The bucket's timestamp is that of its middle reading (the 6th of 10).
_MID = BUCKET_READINGS // 2 + 1
#: The trend is a least-squares line through this many most recent buckets.
WINDOW_BUCKETS = 24
MIN_BUCKETS = 36
MIN_TREND_Z = 2.0
#: Share of the way from baseline to limit a signal must have gone before any prediction.
MIN_PROGRESS = 0.2
#: Memory of the normal spread, in buckets (~200: more than a day of daily ups and downs).
SPREAD_FADING = 0.005
#: How many of its normal standard deviations a level must be from the baseline.
NORMAL_SPREAD_Z = 3.0
#: Memory of the long-run baseline, in buckets; frozen while the signal is degrading.
BASELINE_FADING = 0.02


def least_squares(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """(intercept, slope, sum of squares of t about its mean, residual sum of squares) of the
    least-squares line through ``points``, in two passes (centred, so no cancellation)."""
    n = len(points)
    sum_t = sum_y = 0.0
    for t, y in points:
        sum_t += t
        sum_y += y
    mean_t, mean_y = sum_t / n, sum_y / n
    sxx = sxy = syy = 0.0
    for t, y in points:
        dt, dy = t - mean_t, y - mean_y
        sxx += dt * dt
        sxy += dt * dy
        syy += dy * dy
    slope = sxy / sxx if sxx else 0.0
    residual = syy - slope * sxy
    if 0.0 > residual:  # max(residual, 0.0)
        residual = 0.0
    return mean_y - slope * mean_t, slope, sxx, residual


@dataclass(slots=True)
class TrendReport:
    """A prediction for one signal at the close of a bucket (read-only by convention, not
    frozen: a frozen dataclass costs three times as much to build)."""

    metric: str
    ts: datetime
    value: float  # the smoothed level
    limit: float
    baseline: float
    trend_per_h: float
    time_to_failure_h: float | None  # None: not heading for the limit (or not significant)
    lower_h: float | None
    upper_h: float | None
    progress: float  # share of the way from baseline to limit


@dataclass
class SignalTrend(RestoresByAttribute):
    """A least-squares line through the last bucket summaries of one signal."""

    spec: MetricSpec
    quantile: float
    bucket: list[float] = field(default_factory=list)
    #: the timestamp of the bucket's middle reading (its place on the time axis)
    mid_ts: datetime | None = None
    #: (seconds since the first bucket, summary) of the last WINDOW_BUCKETS buckets
    points: list[tuple[float, float]] = field(default_factory=list)
    origin: datetime | None = None
    buckets: int = 0
    baseline: stats.EWMean = field(default_factory=lambda: stats.EWMean(BASELINE_FADING))
    spread: stats.EWVar = field(default_factory=lambda: stats.EWVar(SPREAD_FADING))

    @property
    def limit(self) -> float:
        limit = (
            self.spec.failure_above
            if self.spec.failure_above is not None
            else (self.spec.failure_below)
        )
        assert limit is not None
        return limit

    @property
    def direction(self) -> float:
        return 1.0 if self.spec.failure_above is not None else -1.0

    def update(self, ts: datetime, value: float) -> TrendReport | None:
        bucket = self.bucket
        bucket.append(value)
        n = len(bucket)
        if n == _MID:
            self.mid_ts = ts
        if n < BUCKET_READINGS:
            return None
        bucket.sort()
        rank = int(self.quantile * n)
        summary = bucket[rank if rank < n - 1 else n - 1]
        mid = self.mid_ts
        bucket.clear()
        assert mid is not None
        return self._close_bucket(mid, summary)

    @staticmethod
    def _slope(points: list[tuple[float, float]]) -> float:
        return least_squares(points)[1]

    def _fit(self) -> tuple[float, float, float, float]:
        """Least squares over the window: (level at the last point, slope/s, slope's s.e.,
        residual sd)."""
        n = len(self.points)
        intercept, slope, sxx, residual = least_squares(self.points)
        sigma2 = residual / (n - 2) if n > 2 else 0.0
        se = math.sqrt(sigma2 / sxx) if sxx else math.inf
        return intercept + slope * self.points[-1][0], slope, se, math.sqrt(sigma2)

    def _close_bucket(self, ts: datetime, summary: float) -> TrendReport | None:
        self.buckets += 1
        if self.origin is None:
            self.origin = ts
        self.points.append(((ts - self.origin).total_seconds(), summary))
        del self.points[:-WINDOW_BUCKETS]
        baseline = float(self.baseline.get()) if self.buckets > 1 else summary
        limit, direction = self.limit, self.direction
        span = limit - baseline
        if self.buckets < MIN_BUCKETS:
            self.baseline.update(summary)
            self.spread.update(summary)
            return None
        level, slope, se, noise = self._fit()
        progress = (level - baseline) / span if span else 0.0
        if progress < 0.1:  # the baseline follows normal life, not a degradation
            self.baseline.update(summary)
            self.spread.update(summary)
        # Beyond normal life: further from the baseline than its own daily ups and downs.
        spread = self.spread.get()
        unusual = abs(level - baseline) > NORMAL_SPREAD_Z * math.sqrt(0 if 0 > spread else spread)
        trend_h, se_h = slope * 3600.0, se * 3600.0
        remaining = limit - level
        heading = trend_h * direction > 0 and abs(trend_h) > MIN_TREND_Z * se_h
        if heading:
            # A trend must move the level by more than its noise over the window (3 residual
            # sd): on pure noise a slope 2 s.e. from zero moves it by only ~1.4 sd.
            span_t = self.points[-1][0] - self.points[0][0]
            heading = abs(slope) * span_t >= NORMAL_SPREAD_Z * noise
        if heading:
            # A step is not a trend: the newer half of the window must still head for the limit
            # at half the window's pace at least (a daily load step, such as a chiller's
            # morning, then flattens; a wearing part keeps going, or speeds up).
            recent = self._slope(self.points[len(self.points) // 2 :])
            heading = recent * direction >= 0.5 * abs(slope)
        ttf = lower = upper = None
        if remaining * direction <= 0:
            ttf = lower = upper = 0.0  # already past the limit
        elif heading and progress >= MIN_PROGRESS and unusual:
            ttf = abs(remaining / trend_h)
            lower = abs(remaining) / (abs(trend_h) + 2 * se_h)
            slow = abs(trend_h) - 2 * se_h
            upper = abs(remaining) / slow if slow > 0 else None
        return TrendReport(
            self.spec.name, ts, level, limit, baseline, trend_h, ttf, lower, upper, progress
        )


class TrendPredictor(RestoresByAttribute):
    """Trends of every degrading signal of one device."""

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type
        self.signals = {
            name: SignalTrend(spec, 0.9 if spec.failure_above is not None else 0.1)
            for name, spec in METRICS_BY_TYPE.get(device_type, {}).items()
            if spec.degrades
        }

    def update(
        self,
        ts: datetime,
        metrics: dict[str, float | None],
        offsets: Mapping[str, SignalBaseline] | None = None,
        bucket: int = 0,
    ) -> list[TrendReport]:
        """Feed one reading; return a report for each signal whose bucket closed.

        With ``offsets`` (the main mode's baselines of the anomaly detector), each signal is
        extrapolated without its time-of-day offset in ``bucket`` where a visit taught one, so
        that a daily load is not taken for a trend."""
        reports = []
        for name, trend in self.signals.items():
            value = metrics.get(name)
            if value is not None:
                if offsets is not None:
                    baseline = offsets.get(name)
                    if baseline is not None and baseline.seen[bucket]:
                        value -= baseline.season[bucket]
                report = trend.update(ts, value)
                if report is not None:
                    reports.append(report)
        return reports
