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
_SQRT2 = math.sqrt(2.0)


def log_score(likelihood: float) -> float:
    """NAB's log scaling of a likelihood into [0, 1]."""
    score = math.log(1.0000000001 - likelihood) / _LOG_FLOOR
    return score if score < 1.0 else 1.0  # min(1.0, score): a builtin call costs ~10x this


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
        p, short, long = self.params, self.short, self.long
        if len(short) == short.maxlen:
            self.short_sum -= short[0]
        short.append(raw)
        self.short_sum += raw
        recent = self.short_sum / len(short)
        if learn or self.count < p.likelihood_learn:
            if len(long) == long.maxlen:
                old = long[0]
                self.sum -= old
                self.sum_sq -= old * old
            long.append(recent)
            self.sum += recent
            self.sum_sq += recent * recent
            self.count += 1
            if self.count < p.likelihood_learn:
                return 0.0
        # How improbable the recent mean is under the normal distribution of the history, its
        # mean and variance floored (max() written out: builtin calls cost more than the math).
        n = len(long)
        mean = self.sum / n
        var = self.sum_sq / n - mean**2
        if p.likelihood_min_var > var:
            var = p.likelihood_min_var
        if p.likelihood_min_mean > mean:
            mean = p.likelihood_min_mean
        z = (recent - mean) / math.sqrt(var)
        # L = 1 - Q(z): Q, the upper tail of the normal distribution, through erfc.
        return log_score(1.0 - 0.5 * math.erfc(z / _SQRT2))
