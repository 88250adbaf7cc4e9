"""Anomaly scoring of one device's readings: per-signal baselines plus a small multivariate model.

Each reading is scored *before* it is learned:

1. every signal gets a z-score against its own protected, drift-aware baseline
   (:class:`~twin_stream.domain.detection.baseline.SignalBaseline`);
2. River's HalfSpaceTrees scores the vector of squashed z-scores (catches combinations that
   are unusual although no single signal is), and its score is itself compared against its own
   baseline, so that only unusually high tree scores count;
3. the components are combined into one calibrated score in [0, 1]: the probability, under a
   Gaussian null with a Šidák correction for the number of components, that no component would
   be this extreme. 0.99 means "a 1-in-100 reading", 0.9999 "1-in-10,000".

>>> detector = AnomalyDetector()
>>> for i in range(300):
...     _ = detector.score_one({"temp": 20.0 + (i % 7) * 0.1, "flow": 5.0 + (i % 5) * 0.05})
>>> normal = detector.score_one({"temp": 20.3, "flow": 5.1})
>>> spike = detector.score_one({"temp": 29.0, "flow": 5.1})
>>> normal.score < 0.9, spike.score > 0.999, spike.top[0][0]
(True, True, 'temp')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import anomaly

from twin_stream.domain.detection.baseline import SignalBaseline
from twin_stream.domain.detection.params import DetectorParams

__all__ = ["AnomalyDetector", "ReadingScore"]

_HST_SIGNAL = "__multivariate__"


@dataclass(frozen=True)
class ReadingScore:
    """The score of one reading and what drove it."""

    score: float
    warming_up: bool
    #: per signal: z-score against the device's own baseline, most extreme first
    top: list[tuple[str, float]]
    baselines: dict[str, float]


def _squash(z: float) -> float:
    """A z-score into (0, 1) for the trees, which assume features in [0, 1]."""
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0) / 3.0))


def _two_sided(z: float) -> float:
    """P(|Z| < |z|) for a standard normal Z."""
    return math.erf(abs(z) / math.sqrt(2.0))


def _one_sided(z: float) -> float:
    """P(Z < z)."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


class AnomalyDetector:
    """Online anomaly scoring for one device (or one univariate series)."""

    def __init__(self, params: DetectorParams | None = None, seed: int = 42) -> None:
        self.params = params or DetectorParams()
        self.baselines: dict[str, SignalBaseline] = {}
        self.trees = anomaly.HalfSpaceTrees(
            n_trees=self.params.hst_trees,
            height=self.params.hst_height,
            window_size=self.params.hst_window,
            seed=seed,
        )
        self.tree_baseline = SignalBaseline(self.params)
        self.count = 0

    def score_one(self, metrics: dict[str, float | None]) -> ReadingScore:
        """Score one reading, then learn from it (unless it is anomalous)."""
        present = {k: v for k, v in metrics.items() if v is not None}
        zs: dict[str, float] = {}
        centers: dict[str, float] = {}
        for name, value in present.items():
            baseline = self.baselines.get(name)
            if baseline is None:
                baseline = self.baselines[name] = SignalBaseline(self.params)
            centers[name] = baseline.center
            zs[name] = baseline.update(value)

        features = {name: _squash(z) for name, z in zs.items()}
        tree_score = float(self.trees.score_one(features)) if features else 0.0
        tree_ready = self.count >= self.params.hst_window
        tree_z = self.tree_baseline.update(tree_score) if tree_ready else 0.0

        # Šidák: the chance that none of n independent components is this extreme.
        components = [_two_sided(z) for z in zs.values()]
        if tree_ready:
            components.append(_one_sided(tree_z))
        score = min(components) if components else 0.0
        if components:
            score = max(components) ** len(components)
        warming_up = self.count < self.params.warmup
        self.count += 1
        # Protection for the trees: an anomalous reading does not teach them it is normal.
        if features and score < 0.999:
            self.trees.learn_one(features)
        top = sorted(zs.items(), key=lambda kv: abs(kv[1]), reverse=True)
        return ReadingScore(
            score=0.0 if warming_up else score,
            warming_up=warming_up,
            top=top,
            baselines=centers,
        )

    def signal_scale(self, name: str) -> float:
        return self.baselines[name].scale
