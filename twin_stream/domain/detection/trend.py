"""Failure prediction: when will a degrading signal cross its failure limit?

For each signal with a failure limit (``twin_stream.domain.devices``), readings are summarised
per bucket of ``bucket_readings`` readings by a quantile on the failing side (the 90th
percentile for a limit above, the 10th for a limit below), so that pauses and duty cycles do not
look like trends. Holt's linear method (level + trend, Holt 1957) runs over the bucket
summaries with the real time between buckets; the spread of the bucket-to-bucket slopes gives
the trend's uncertainty. The predicted time to failure is ``(limit - level) / trend`` when the
trend points at the limit and is significant, with a band from ``trend ± 2σ``.

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
from dataclasses import dataclass, field
from datetime import datetime

from river import stats

from twin_stream.domain.devices import METRICS_BY_TYPE, MetricSpec

__all__ = ["SignalTrend", "TrendPredictor", "TrendReport"]

#: Buckets of this many readings summarise a signal.
BUCKET_READINGS = 10
LEVEL_ALPHA = 0.5
TREND_BETA = 0.15
MIN_BUCKETS = 6
MIN_TREND_Z = 2.0
#: Share of the way from baseline to limit a signal must have gone before any prediction.
MIN_PROGRESS = 0.2
#: Memory of the long-run baseline, in buckets; frozen while the signal is degrading.
BASELINE_FADING = 0.02


@dataclass(frozen=True)
class TrendReport:
    """A prediction for one signal at the close of a bucket."""

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
class SignalTrend:
    """Holt's level and trend over bucket summaries of one signal."""

    spec: MetricSpec
    quantile: float
    bucket: list[float] = field(default_factory=list)
    bucket_ts: list[datetime] = field(default_factory=list)
    level: float | None = None
    trend_per_s: float = 0.0
    last_ts: datetime | None = None
    buckets: int = 0
    slope_var: stats.EWVar = field(default_factory=lambda: stats.EWVar(fading_factor=0.1))
    baseline: stats.EWMean = field(default_factory=lambda: stats.EWMean(BASELINE_FADING))

    @property
    def limit(self) -> float:
        limit = self.spec.failure_above if self.spec.failure_above is not None else (
            self.spec.failure_below)
        assert limit is not None
        return limit

    @property
    def direction(self) -> float:
        return 1.0 if self.spec.failure_above is not None else -1.0

    def update(self, ts: datetime, value: float) -> TrendReport | None:
        self.bucket.append(value)
        self.bucket_ts.append(ts)
        if len(self.bucket) < BUCKET_READINGS:
            return None
        ordered = sorted(self.bucket)
        summary = ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]
        mid = self.bucket_ts[len(self.bucket_ts) // 2]
        self.bucket.clear()
        self.bucket_ts.clear()
        return self._close_bucket(mid, summary)

    def _close_bucket(self, ts: datetime, summary: float) -> TrendReport | None:
        self.buckets += 1
        if self.level is None or self.last_ts is None:
            self.level, self.last_ts = summary, ts
            self.baseline.update(summary)
            return None
        dt = max((ts - self.last_ts).total_seconds(), 1e-6)
        predicted = self.level + self.trend_per_s * dt
        level = LEVEL_ALPHA * summary + (1 - LEVEL_ALPHA) * predicted
        slope = (level - self.level) / dt
        self.slope_var.update(slope)
        self.trend_per_s = TREND_BETA * slope + (1 - TREND_BETA) * self.trend_per_s
        self.level, self.last_ts = level, ts

        baseline = float(self.baseline.get())
        span = self.limit - baseline
        progress = (level - baseline) / span if span else 0.0
        if progress < 0.1:  # the baseline follows normal life, not a degradation
            self.baseline.update(summary)
        if self.buckets < MIN_BUCKETS:
            return None
        trend_h = self.trend_per_s * 3600.0
        # Std. dev. of an exponentially weighted mean of the slopes.
        sigma_h = math.sqrt(max(self.slope_var.get(), 0.0) * TREND_BETA / (2 - TREND_BETA))
        sigma_h *= 3600.0
        remaining = self.limit - level
        heading = trend_h * self.direction > 0 and abs(trend_h) > MIN_TREND_Z * sigma_h
        ttf = lower = upper = None
        if remaining * self.direction <= 0:
            ttf = lower = upper = 0.0  # already past the limit
        elif heading and progress >= MIN_PROGRESS:
            ttf = remaining / trend_h
            fast = abs(trend_h) + 2 * sigma_h
            slow = abs(trend_h) - 2 * sigma_h
            lower = abs(remaining) / fast
            upper = abs(remaining) / slow if slow > 0 else None
        return TrendReport(self.spec.name, ts, level, self.limit, baseline, trend_h, ttf, lower,
                           upper, progress)


class TrendPredictor:
    """Trends of every degrading signal of one device."""

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type
        self.signals = {
            name: SignalTrend(spec, 0.9 if spec.failure_above is not None else 0.1)
            for name, spec in METRICS_BY_TYPE[device_type].items()
            if spec.degrades
        }

    def update(self, ts: datetime, metrics: dict[str, float | None]) -> list[TrendReport]:
        """Feed one reading; return a report for each signal whose bucket closed."""
        reports = []
        for name, trend in self.signals.items():
            value = metrics.get(name)
            if value is not None:
                report = trend.update(ts, value)
                if report is not None:
                    reports.append(report)
        return reports
