"""A unit's health index: how far its recent readings are from its own frozen healthy reference.

Every other baseline of the detector adapts, so a slow degradation is learned as the new normal
before it crosses a limit. The healthy reference does not adapt:

1. **Reference.** Over a learning period, per signal mean and standard deviation, and the
   correlation matrix of the signals, are learned, then **frozen**. The learning period is one
   documented rule: it ends at whichever comes first of ``reference_readings`` readings or
   ``reference_hours`` of the device's own clock (its first day), and never before
   ``min_reference`` readings. It is learned again only on :meth:`HealthMonitor.relearn`
   (maintenance done, a firmware change, an explicit re-baseline), never by drifting. A signal
   with fewer than ``min_reference`` values in the learning period, or that appears only after
   the reference froze, is **ignored by the index** (it is not in the reference). A missing
   value during learning counts, for the correlations, as the signal's running mean.
   Scales have a floor (``min_relative_scale`` of the signal's level, as the adaptive
   baselines have): a signal constant in the reference is not infinitely sensitive.
   The correlation matrix is estimated from few readings (20-400) for up to ~25 signals, so it
   is shrunk towards the identity (the diagonal of the covariance) by the Oracle Approximating
   Shrinkage of Chen, Wiesel, Eldar and Hero ("Shrinkage algorithms for MMSE covariance
   estimation", IEEE Trans. Signal Processing 58(10), 2010, eq. 23), whose weight depends only
   on the sample matrix, n and p (no fourth moments: the raw readings are never kept).
2. **Health index.** After the reference froze, an exponentially weighted mean m of each signal
   (weights 1/n up to ``window`` readings, then a fixed 1/``window``; plain Python floats, one
   multiply-add per signal and reading) is the "recent window". Every ``bucket_readings``
   readings, with z = (m - mu) / sd against the reference, the index is the Mahalanobis distance
   ``sqrt(z^T R^-1 z)`` of the window against the reference (R the shrunk correlation matrix):
   in reference standard deviations, ~0 for a unit like its reference, growing linearly with a
   drift. Its square, divided by the variance factor of the two means (the EW mean's
   ``sum of w_k^2`` plus 1/n of the reference mean), is Hotelling's T² of the window mean,
   chi²(p) for a healthy unit in the large-sample limit (DETECTION-NOTES, "Multivariate";
   Montgomery, *Introduction to Statistical Quality Control*, ch. 11, the multivariate chart of
   subgroup means). The three signals with the largest ``|z|`` are the drivers.
3. **Stage.** The warning limit of the index is the chi²(p) quantile at ``alpha`` on that T²
   scale (Wilson-Hilferty's inverse: no scipy), so it comes from the reference's own size, p and
   window, never from a file; the critical limit is ``critical_factor`` times as far. A stage is
   reached when the index stays beyond its limit for ``sustain_buckets`` buckets in a row (a
   sustained departure, not one noisy bucket) and the unit's index trend over the last
   ``trend_buckets`` buckets is not downwards (a step that is already coming back does not
   page); it falls back as soon as the index is inside the limit again (the alert policy keeps
   a degradation open until the stage has been 0 for a while).
4. **History.** Each bucket appends (hours since the reference froze, index) to a bounded
   history (``history_points``; when full, the older half is thinned to every other point, so
   a long life keeps its shape at a coarser step): what the fleet model learns from
   (:mod:`~twin_stream.domain.detection.rul`).

>>> import random
>>> from datetime import datetime, timedelta, timezone
>>> rng = random.Random(3)
>>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> h = HealthMonitor()
>>> for i in range(3000):  # one reading a minute; after 20 h, "b" drifts up by 1 sd an hour
...     drift = max(0.0, (i - 1200) / 60)
...     r = h.update(t0 + timedelta(minutes=i), {"a": rng.gauss(0, 1), "b": rng.gauss(drift, 1)})
...     if i == 1100:
...         healthy = r
>>> h.reference_frozen, healthy.stage, r.stage, r.drivers[0][0], r.trend_per_h > 0
(True, 0, 2, 'b', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import mul
from typing import Any, Final

import numpy as np

from twin_stream.domain.detection.baseline import SignalBaseline, deseasonalized
from twin_stream.domain.detection.multivariate import chi2_ppf, oas_shrinkage

# Checkpoints pickled before the parameters moved to params.py name them by this module:
# importable here, that state loads as it is.
from twin_stream.domain.detection.params import HealthParams as HealthParams
from twin_stream.domain.detection.state import RestoresByAttribute, restore_attributes
from twin_stream.domain.detection.trend import least_squares

__all__ = ["HealthMonitor", "HealthReading"]


@dataclass(slots=True)
class HealthReading:
    """The health index after one reading (read-only by convention: one object is shared by
    the readings between two buckets)."""

    #: the health index (None while the reference is learning): 0 ~ like the reference, in
    #: reference standard deviations of the recent window's distance from it
    index: float | None
    learning: bool
    #: 0 normal, 1 warning, 2 critical: a sustained departure of the index beyond its limits
    stage: int
    #: least-squares slope of the index per hour of the device's clock
    trend_per_h: float | None
    #: up to 3 signals that moved most against the reference: (name, signed deviation of the
    #: recent window in reference sd)
    drivers: list[tuple[str, float]] = field(default_factory=list)
    #: True on the reading that closed a bucket (a new history point: time to predict)
    summarised: bool = False
    #: the warning limit of the index at this bucket (None while learning)
    limit: float | None = None
    #: ``index`` rounded to 2 decimals (what ``twin.scores`` carries), once per bucket
    rounded: float | None = None


#: Up to this many signals the index is computed in plain Python (2 us against numpy's 5 for
#: four signals), beyond it by numpy's matrix products.
_PYTHON_MAX_SIGNALS: Final = 8

_LEARNING = HealthReading(None, True, 0, None, [], False, None)


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y on t (None for fewer than 3 points or no spread in t)."""
    if len(points) < 3:
        return None
    _, slope, sxx, _ = least_squares(points)
    return slope if sxx > 0 else None


class HealthMonitor(RestoresByAttribute):
    """One device's frozen healthy reference and its health index (see the module docstring)."""

    def __init__(self, params: HealthParams | None = None) -> None:
        self.params = params if params is not None else HealthParams()
        self.relearn()

    #: The numpy arrays of the state, saved as nested lists of floats: a pickle of the same
    #: state is then the same bytes whether the arrays were computed or restored (numpy's
    #: reconstructors pickle the identity of their dtype objects, which a restore changes), so
    #: a device replayed from its checkpoint ends with byte-identical models.
    _ARRAYS: Final = ("_cross", "_total", "_mu_arr", "_sd_arr", "_inv")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._ARRAYS:
            state[name] = (state[name].shape, state[name].tolist())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        for name in self._ARRAYS:
            shape, values = state[name]
            state[name] = np.array(values, dtype=np.float64).reshape(shape)
        restore_attributes(self, state)

    # -- learning -------------------------------------------------------------------------

    def relearn(self) -> None:
        """Forget the reference: learn it again from the next readings (maintenance done, a
        firmware change, an explicit re-baseline). The history starts afresh too."""
        #: signals of the learning period, in order of appearance
        self.names: list[str] = []
        self._first_ts: datetime | None = None
        self._rows = 0
        self._shift: list[float] = []
        self._sum: list[float] = []  # per signal, of (value - shift) over its present values
        self._sumsq: list[float] = []
        self._count: list[int] = []
        self._pending: list[list[float]] = []
        self._cross = np.zeros((0, 0))  # sum of d d^T, d = value - shift (missing: running mean)
        self._total = np.zeros(0)  # sum of d
        # the frozen reference (None while learning)
        self.frozen_ts: datetime | None = None
        self._mu: list[float] | None = None
        self._mu_arr = np.zeros(0)
        self._sd_arr = np.ones(0)
        self._inv: np.ndarray = np.zeros((0, 0))
        # the same as plain floats, for the index of a few signals (numpy's per-call overhead
        # costs more than the arithmetic there)
        self._sd: list[float] = []
        self._inv_rows: list[list[float]] = []
        self._n_ref = 0
        self.shrinkage = 0.0
        self.dof = 0
        self._t2_limit = 0.0
        # the recent window
        self._m: list[float] = []
        self._n = 0
        self._fading = 1.0 / self.params.window
        self._var = 0.0  # sum of squared weights of the EW mean (its variance / sd^2)
        self._runs = [0, 0]  # buckets in a row beyond the warning, critical limit
        self._hist: list[tuple[float, float]] = []
        self.last: HealthReading = _LEARNING

    @property
    def reference_frozen(self) -> bool:
        return self._mu is not None

    def _learn(self, ts: datetime, metrics: dict[str, float | None]) -> HealthReading:
        if self._first_ts is None:
            self._first_ts = ts
        names, shift, sums, sumsq, count = (
            self.names,
            self._shift,
            self._sum,
            self._sumsq,
            self._count,
        )
        for name, value in metrics.items():
            if value is not None and name not in names:
                names.append(name)
                shift.append(value)
                sums.append(0.0)
                sumsq.append(0.0)
                count.append(0)
        row = []
        for i, name in enumerate(names):
            value = metrics.get(name)
            if value is None:
                row.append(sums[i] / count[i] if count[i] else 0.0)
                continue
            d = value - shift[i]
            sums[i] += d
            sumsq[i] += d * d
            count[i] += 1
            row.append(d)
        self._pending.append(row)
        self._rows += 1
        p = self.params
        if len(self._pending) >= p.bucket_readings:
            self._fold()
        hours = (ts - self._first_ts).total_seconds() / 3600.0
        if self._rows >= p.reference_readings or (
            hours >= p.reference_hours and self._rows >= p.min_reference
        ):
            self._freeze(ts)
        return self.last

    def _fold(self) -> None:
        """Fold the pending rows into the cross products (one matrix product per bucket)."""
        if not self._pending:
            return
        p = len(self.names)
        x = np.zeros((len(self._pending), p))
        for k, row in enumerate(self._pending):
            x[k, : len(row)] = row
        old = self._cross.shape[0]
        if old < p:  # signals that appeared in this bucket
            cross, total = np.zeros((p, p)), np.zeros(p)
            cross[:old, :old] = self._cross
            total[:old] = self._total
            self._cross, self._total = cross, total
        self._cross += x.T @ x
        self._total += x.sum(axis=0)
        self._pending.clear()

    def _freeze(self, ts: datetime) -> None:
        self._fold()
        p, n = self.params, self._rows
        keep = [i for i, c in enumerate(self._count) if c >= p.min_reference]
        names = [self.names[i] for i in keep]
        mu, sd = [], []
        for i in keep:
            c, s = self._count[i], self._sum[i]
            mean = s / c
            var = max((self._sumsq[i] - s * mean) / (c - 1), 0.0)
            level = self._shift[i] + mean
            mu.append(level)
            sd.append(max(math.sqrt(var), p.min_relative_scale * abs(level), p.min_scale))
        idx = np.asarray(keep, dtype=int)
        mean_d = self._total[idx] / n
        cov = (self._cross[np.ix_(idx, idx)] - n * np.outer(mean_d, mean_d)) / max(n - 1, 1)
        diag = np.sqrt(np.maximum(np.diag(cov), 0.0))
        # Correlations of the signals that vary; a signal at its scale floor correlates with
        # nothing (its row is the identity's).
        varies = diag >= np.asarray(sd) * 0.999 if len(sd) else np.zeros(0, dtype=bool)
        corr = np.eye(len(keep))
        if varies.sum() >= 2:
            v = np.flatnonzero(varies)
            sub = cov[np.ix_(v, v)] / np.outer(diag[v], diag[v])
            corr[np.ix_(v, v)] = np.clip(sub, -1.0, 1.0)
            np.fill_diagonal(corr, 1.0)
        self.shrinkage = oas_shrinkage(corr, n)
        shrunk = (1.0 - self.shrinkage) * corr + self.shrinkage * np.eye(len(keep))
        self.names = names
        self._mu = mu
        self._mu_arr = np.asarray(mu)
        self._sd_arr = np.asarray(sd)
        self._inv = np.linalg.inv(shrunk) if keep else np.zeros((0, 0))
        self._sd = list(sd)
        self._inv_rows = self._inv.tolist()
        self._n_ref = n
        # degrees of freedom: the signals that varied in the reference (a constant one adds
        # nothing to a healthy unit's T²)
        self.dof = max(int(varies.sum()), 1)
        self._t2_limit = chi2_ppf(1.0 - p.alpha, self.dof)
        self._m = list(mu)
        self.frozen_ts = ts
        # the learning accumulators are no longer needed (state stays small)
        self._shift, self._sum, self._sumsq, self._count = [], [], [], []
        self._cross, self._total = np.zeros((0, 0)), np.zeros(0)
        self.last = HealthReading(0.0, False, 0, None, [], False, None, 0.0)

    # -- the index ------------------------------------------------------------------------

    def update(
        self,
        ts: datetime,
        metrics: dict[str, float | None],
        profiles: Mapping[str, SignalBaseline] | None = None,
        bucket: int = 0,
    ) -> HealthReading:
        """Feed one reading; return the index after it.

        With ``profiles`` (the main mode's baselines of the anomaly detector), each signal's
        time-of-day offset in ``bucket`` is removed where the profile explains the signal
        (:meth:`SignalBaseline.seasonal`, the test the baselines use), so that a daily load is
        not a drift and a signal without a daily cycle is not given offsets learned from its
        noise; without, ``metrics`` are taken as they are."""
        if self._mu is None:
            if profiles is not None:
                values: dict[str, float | None] = {}
                for name, value in metrics.items():
                    values[name] = deseasonalized(name, value, profiles, bucket)
                metrics = values
            return self._learn(ts, metrics)
        n = self._n + 1
        self._n = n
        a = 1.0 / n
        if self._fading > a:
            a = self._fading
        m = self._m
        i = 0
        for name in self.names:
            value = metrics.get(name)
            if value is not None:
                if profiles is not None:  # _deseasonalized, written out: per signal and reading
                    profile = profiles.get(name)
                    if profile is not None and profile.seasonal(bucket):
                        value -= profile.season[bucket]
                m[i] += a * (value - m[i])
            i += 1
        # variance factor of the EW mean: (1 - a)^2 v + a^2 (1/n exactly while a = 1/n)
        b = 1.0 - a
        self._var = b * b * self._var + a * a
        if n % self.params.bucket_readings:
            return self.last
        return self._summarise(ts)

    def _summarise(self, ts: datetime) -> HealthReading:
        p = self.params
        mus = self._mu
        assert mus is not None  # summarised only after the reference froze
        if len(self._m) <= _PYTHON_MAX_SIGNALS:
            zs = [(m - mu) / sd for m, mu, sd in zip(self._m, mus, self._sd, strict=True)]
            d2 = 0.0
            for zi, row in zip(zs, self._inv_rows, strict=True):
                acc = 0.0
                for term in map(mul, row, zs):
                    acc += term
                d2 += zi * acc
        else:
            z = (np.asarray(self._m) - self._mu_arr) / self._sd_arr
            d2 = float(z @ self._inv @ z)
            zs = z.tolist()
        index = math.sqrt(d2 if d2 > 0.0 else 0.0)
        scale = self._var + 1.0 / self._n_ref
        limit = p.warning_factor * math.sqrt(scale * self._t2_limit)
        hours = self.hours_at(ts) or 0.0
        hist = self._hist
        hist.append((hours, index))
        if len(hist) > p.history_points:
            half = len(hist) // 2
            hist[:half] = hist[:half:2]
        trend = _slope(hist[-p.trend_buckets :])
        runs = self._runs
        runs[0] = runs[0] + 1 if index > limit else 0
        runs[1] = runs[1] + 1 if index > p.critical_factor * limit else 0
        stage = 2 if runs[1] >= p.sustain_buckets else 1 if runs[0] >= p.sustain_buckets else 0
        if stage and trend is not None and trend < 0 and self.last.stage < stage:
            stage = self.last.stage  # coming back: no escalation (a step, not a degradation)
        order = sorted(range(len(zs)), key=lambda k: -abs(zs[k]))[: p.drivers]
        drivers = [(self.names[k], round(zs[k], 2)) for k in order]
        rounded = round(index, 2)
        self.last = HealthReading(index, False, stage, trend, drivers, False, limit, rounded)
        return HealthReading(index, False, stage, trend, drivers, True, limit, rounded)

    # -- what the fleet model reads ----------------------------------------------------------

    def hours_at(self, ts: datetime) -> float | None:
        """``ts`` in hours since the reference froze (the history's clock); None before the
        reference froze or before ``ts``."""
        if self.frozen_ts is None or ts < self.frozen_ts:
            return None
        return (ts - self.frozen_ts).total_seconds() / 3600.0

    def history(self) -> list[tuple[float, float]]:
        """(hours since the reference froze, index), one per bucket, oldest first (bounded)."""
        return list(self._hist)
