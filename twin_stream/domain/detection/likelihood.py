"""The anomaly likelihood (Ahmad, Lavin, Purdy and Agha 2017): one calibrated score.

A raw score in [0, 1] is noisy, and what is "high" differs per device and per series. The
likelihood compares the mean of the last ``likelihood_short`` raw scores with the mean and the
spread of the last ``likelihood_long`` ones, and reports how improbable the recent mean is under
that normal distribution. The score is NAB's log-scaled form of it,
``log(1.0000000001 - L) / log(1 - 0.99999)``: 0 for "as usual", 0.5 at L = 0.9968, 1.0 at
L >= 0.99999. On healthy data it stays near 0, so one threshold fits every device and file.

>>> from twin_stream.domain.detection.params import DetectorParams
>>> lik = AnomalyLikelihood(DetectorParams())
>>> calm = [lik.update(0.3 + 0.1 * (i % 5) / 4) for i in range(1000)]
>>> round(max(calm[400:]), 3) < 0.2
True
>>> burst = [lik.update(1.0) for _ in range(5)]
>>> burst[-1] > 0.5
True
"""

from __future__ import annotations

import math
from collections import deque

from twin_stream.domain.detection.params import DetectorParams

__all__ = ["AnomalyLikelihood", "log_score"]

_LOG_FLOOR = math.log(1.0 - 0.99999)  # NAB's numenta detector: log(1 - 0.99999)


def log_score(likelihood: float) -> float:
    """NAB's log scaling of a likelihood into [0, 1]."""
    return min(1.0, math.log(1.0000000001 - likelihood) / _LOG_FLOOR)


class AnomalyLikelihood:
    """Streaming anomaly likelihood of a raw score (see module docstring)."""

    __slots__ = ("count", "long", "params", "short", "short_sum", "sum", "sum_sq")

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self.short: deque[float] = deque(maxlen=params.likelihood_short)
        self.long: deque[float] = deque(maxlen=params.likelihood_long)
        self.short_sum = 0.0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.count = 0

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def update(self, raw: float, learn: bool = True) -> float:
        """Feed one raw score; return the calibrated, log-scaled score.

        With ``learn=False`` the recent mean moves but the long history does not learn it.
        """
        p = self.params
        if len(self.short) == self.short.maxlen:
            self.short_sum -= self.short[0]
        self.short.append(raw)
        self.short_sum += raw
        recent = self.short_sum / len(self.short)
        if not learn and self.count >= p.likelihood_learn:
            return self._score(recent)
        if len(self.long) == self.long.maxlen:
            old = self.long[0]
            self.sum -= old
            self.sum_sq -= old * old
        self.long.append(recent)
        self.sum += recent
        self.sum_sq += recent * recent
        self.count += 1
        if self.count < p.likelihood_learn:
            return 0.0
        return self._score(recent)

    def _score(self, recent: float) -> float:
        p = self.params
        n = len(self.long)
        mean = max(self.sum / n, p.likelihood_min_mean)
        var = max(self.sum_sq / n - (self.sum / n) ** 2, p.likelihood_min_var)
        z = (recent - mean) / math.sqrt(var)
        # L = 1 - Q(z): Q, the upper tail of the normal distribution, through erfc.
        return log_score(1.0 - 0.5 * math.erfc(z / math.sqrt(2.0)))
