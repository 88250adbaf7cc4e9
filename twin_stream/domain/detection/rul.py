"""Remaining useful life learned from the fleet's failures: similarity of health-index paths.

A device type's :class:`FleetModel` learns from the units of its fleet that failed: each gives
its health-index history (:meth:`~twin_stream.domain.detection.health.HealthMonitor.history`,
hours since its reference froze and the index) and when, on that clock, it failed. The model
keeps each unit's path as a function of its *time to failure* and predicts a live unit's
remaining useful life by trajectory similarity, the approach of Wang, Yu, Siegel and Lee
("A similarity-based prognostics approach for remaining useful life estimation of engineered
systems", PHM 2008, the winner of the PHM'08 challenge on C-MAPSS data):

1. every learned path is resampled on one regular grid of time to failure (step: half the
   median spacing of the learned histories); before its record starts a path is taken as
   flat at its first value (the unit was healthy), after its record stops (a history that
   ends before the failure) it is unknown, and no alignment may use it there;
2. the live unit's last ``match_points`` grid steps (its recent path, resampled the same way)
   are slid along each learned path; the alignment with the smallest mean squared difference
   gives that unit's candidate RUL (the time to failure at which the learned unit looked like
   this one does now);
3. the ``neighbours`` most similar learned units vote: the RUL is the mean of their
   candidates, the interval the smallest and largest of them (at least ``min_band`` of the
   RUL either side, so it never collapses to a point).

The index is in reference standard deviations of each unit's own healthy reference, so paths of
different units of one type are comparable without any per-unit scaling. No prediction is made
before ``min_failures`` failures have been learned. The state is plain JSON (:meth:`to_json`,
:meth:`from_json`, validated on load), never a pickle.

>>> model = FleetModel()
>>> for life in (100.0, 120.0, 140.0, 110.0):  # units whose index rises over their last 60 h
...     path = [(t, max(0.0, t - (life - 60.0)) / 10.0) for t in range(0, int(life), 10)]
...     learned = model.learn(path, failed_after_h=life)
>>> live = [(t, max(0.0, t - 70.0) / 10.0) for t in range(0, 100, 10)]  # 40 h from its failure
>>> estimate = model.predict(live)
>>> round(estimate.rul_h), estimate.low_h <= estimate.rul_h <= estimate.high_h
(40, True)
>>> FleetModel.from_json(model.to_json()).predict(live) == estimate
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = ["FleetModel", "RulEstimate"]

#: 2: the ids of the failures learned are kept (a lesson read twice is learned once).
_VERSION: Final = 2
#: log() of an index below this is log(this): a unit at its reference has an index near 0.
_LOG_FLOOR: Final = 0.1
#: At most this many failures are kept (the oldest are forgotten first): a prediction costs
#: one vectorised pass over every learned path.
MAX_UNITS: Final = 500
#: At most this many points of one learned path are kept (a HealthMonitor keeps 200).
MAX_POINTS: Final = 400


@dataclass(slots=True)
class RulEstimate:
    """A remaining useful life, hours from the last history point, with its interval."""

    rul_h: float
    low_h: float
    high_h: float


def _extrapolate(t: np.ndarray, y: np.ndarray, at: np.ndarray, points: int) -> np.ndarray:
    """The path's exponential trend over its ``points`` points nearest to failure (``t``
    ascending time to failure), evaluated at the times to failure ``at`` (< ``t[0]``)."""
    tt, ly = t[:points], np.log(np.maximum(y[:points], _LOG_FLOOR))
    if len(tt) < 3 or float(np.ptp(tt)) <= 0:
        return np.full(len(at), y[0])
    slope = float(np.polyfit(tt, ly, 1)[0])  # per hour of time to failure: < 0 when rising
    slope = min(slope, 0.0)
    out: np.ndarray = np.exp(np.log(max(float(y[0]), _LOG_FLOOR)) + slope * (at - t[0]))
    return out


class FleetModel:
    """What one device type's fleet learned from its failures (see the module docstring)."""

    #: Before this many failures, no prediction.
    min_failures: int = 3
    #: The live unit's recent path compared, in grid steps (CV on C-MAPSS FD003, both halves:
    #: 10, 20, 40 tried; 40 steps are 200 h there).
    match_points: int = 40
    #: How many of the most similar learned units vote (CV: 3, 5, 10 tried).
    neighbours: int = 10
    #: The interval is at least this share of the RUL either side.
    min_band: float = 0.1
    #: Paths compared as log(index) instead of the index (CV: no better, so off).
    log_space: bool = False
    #: A path that stops before its failure is extended to it along the exponential trend
    #: of its last this many points (least squares on log(index), never downwards).
    tail_points: int = 6

    def __init__(self) -> None:
        #: each learned unit's path: (time to failure in hours, index), latest first
        self.units: list[list[tuple[float, float]]] = []
        #: the id of each learned failure, in the order of ``units`` (None: not given)
        self.learned: list[str | None] = []
        self._grid: tuple[float, np.ndarray, np.ndarray] | None = None

    @property
    def failures(self) -> int:
        return len(self.units)

    @property
    def failure_index(self) -> float:
        """The index the learned units had at their last point before failure (the median):
        what a unit's index tends to reach when it fails (0.0 before any failure)."""
        if not self.units:
            return 0.0
        return float(np.median([path[0][1] for path in self.units]))

    def learn(
        self,
        history: list[tuple[float, float]],
        failed_after_h: float,
        failure_id: str | None = None,
    ) -> bool:
        """Learn one failure: a unit's health-index history and, on the same clock, when it
        failed. Points after the failure are left out; an empty history teaches nothing, and
        a ``failure_id`` already learned is not learned again (a record read twice). Returns
        whether the model learned something."""
        if not math.isfinite(failed_after_h) or failed_after_h < 0:
            raise ValueError(f"failed_after_h must be a finite number >= 0, not {failed_after_h}")
        if failure_id is not None and failure_id in self.learned:
            return False
        path = sorted(
            (failed_after_h - t, y)
            for t, y in history
            if t <= failed_after_h and math.isfinite(t) and math.isfinite(y)
        )
        if not path:
            return False
        if len(path) > MAX_POINTS:
            step = len(path) / MAX_POINTS
            path = [path[int(k * step)] for k in range(MAX_POINTS)]
        self.units.append([(float(a), float(b)) for a, b in path])
        self.learned.append(failure_id)
        del self.units[:-MAX_UNITS]
        del self.learned[:-MAX_UNITS]
        self._grid = None
        return True

    # -- prediction ------------------------------------------------------------------------

    def _build(self) -> tuple[float, np.ndarray, np.ndarray]:
        """The learned paths on one grid of time to failure: (step, values, known)."""
        spacings = [
            b[0] - a[0] for path in self.units for a, b in zip(path, path[1:], strict=False)
        ]
        positive = [s for s in spacings if s > 0]
        step = float(np.median(positive)) / 2.0 if positive else 1.0
        longest = max(path[-1][0] for path in self.units)
        size = int(longest / step) + self.match_points + 2
        ttf = np.arange(size) * step
        values = np.empty((len(self.units), size))
        known = np.empty((len(self.units), size), dtype=bool)
        for k, path in enumerate(self.units):
            t = np.asarray([a for a, _ in path])
            y = np.asarray([b for _, b in path])
            values[k] = np.interp(ttf, t, y)  # flat before its record started
            known[k] = True
            if t[0] > 0:  # its record stopped before the failure: extrapolate to it
                values[k, ttf < t[0]] = _extrapolate(t, y, ttf[ttf < t[0]], self.tail_points)
        if self.log_space:
            values = np.log(np.maximum(values, _LOG_FLOOR))
        self._grid = (step, values, known)
        return self._grid

    def predict(self, history: list[tuple[float, float]]) -> RulEstimate | None:
        """The remaining useful life after the last point of ``history`` (a live unit's
        :meth:`~twin_stream.domain.detection.health.HealthMonitor.history`); None until
        ``min_failures`` failures are learned, or for an empty history."""
        if len(self.units) < self.min_failures or not history:
            return None
        step, values, known = self._grid if self._grid is not None else self._build()
        t = np.asarray([a for a, _ in history], dtype=float)
        y = np.asarray([b for _, b in history], dtype=float)
        end = t[-1]
        span = int((end - t[0]) / step) + 1
        length = max(1, min(self.match_points, span))
        # the live path backwards from its last point, on the grid (offset j: j steps ago)
        recent = np.interp(end - np.arange(length) * step, t, y)
        if self.log_space:
            recent = np.log(np.maximum(recent, _LOG_FLOOR))
        size = values.shape[1] - length
        dist = np.zeros((len(self.units), size))
        valid = np.ones((len(self.units), size), dtype=bool)
        for j in range(length):
            diff = values[:, j : j + size] - recent[j]
            dist += diff * diff
            valid &= known[:, j : j + size]
        dist = np.where(valid, dist / length, np.inf)
        best = dist.argmin(axis=1)
        best_d = dist[np.arange(len(self.units)), best]
        usable = np.flatnonzero(np.isfinite(best_d))
        if usable.size == 0:
            return None
        order = usable[np.argsort(best_d[usable], kind="stable")][: self.neighbours]
        candidates = best[order] * step
        rul = float(candidates.mean())
        band = self.min_band * rul
        low = float(min(candidates.min(), rul - band))
        high = float(max(candidates.max(), rul + band))
        return RulEstimate(rul, max(low, 0.0), high)

    # -- state -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able state (no pickle)."""
        return {
            "version": _VERSION,
            "units": [[list(p) for p in path] for path in self.units],
            "learned": list(self.learned),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetModel:
        """A model from :meth:`to_json`'s output; ValueError (with the reason) for anything
        else."""
        if not isinstance(data, dict):
            raise ValueError(f"fleet model: expected an object, not {type(data).__name__}")
        if data.get("version") != _VERSION:
            raise ValueError(f"fleet model: version {data.get('version')!r}, expected {_VERSION}")
        units = data.get("units")
        if not isinstance(units, list) or len(units) > MAX_UNITS:
            raise ValueError(f"fleet model: 'units' must be a list of at most {MAX_UNITS} paths")
        learned = data.get("learned")
        if not isinstance(learned, list) or len(learned) != len(units):
            raise ValueError("fleet model: 'learned' must list one failure id (or null) a unit")
        if not all(item is None or isinstance(item, str) for item in learned):
            raise ValueError("fleet model: a failure id in 'learned' is not a string or null")
        model = cls()
        model.learned = list(learned)
        for k, path in enumerate(units):
            if not isinstance(path, list) or not 1 <= len(path) <= MAX_POINTS:
                raise ValueError(f"fleet model: unit {k} is not a list of 1-{MAX_POINTS} points")
            points = []
            for point in path:
                ok = isinstance(point, list | tuple) and len(point) == 2
                ok = ok and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in point
                )
                if not ok or point[0] < 0:
                    raise ValueError(
                        f"fleet model: unit {k} has a point {point!r} that is not "
                        "[hours to failure >= 0, index]"
                    )
                points.append((float(point[0]), float(point[1])))
            if points != sorted(points):
                raise ValueError(f"fleet model: unit {k}'s points are not in time-to-failure order")
            model.units.append(points)
        return model
