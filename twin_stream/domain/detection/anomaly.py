"""Anomaly scoring of one device's readings, calibrated into one score in [0, 1].

Each reading is scored *before* it is learned:

1. the reading's operating mode is learned from the data: the set of its signals that are
   "off" (a paused pump's flow, a ventilator on standby); each mode has its own baselines;
2. every signal gets a z-score against its own protected, seasonal baseline
   (:class:`~twin_stream.domain.detection.baseline.SignalBaseline`);
3. the raw score: for one signal, P(|Z| < |z|); for several, 1 - p of Hotelling's T² and the
   residual Q of a streaming PCA of the z-scores
   (:class:`~twin_stream.domain.detection.multivariate.StreamingPCA`);
4. the anomaly likelihood calibrates the raw score
   (:class:`~twin_stream.domain.detection.likelihood.AnomalyLikelihood`), and a value beyond
   the signal's whole learned range scores 1.0 (range novelty).

On healthy data the score stays near 0; 0.5 means "a 1-in-300 run of readings", 1.0 "1 in
100,000 or a value never seen before".

>>> import random
>>> rng = random.Random(7)
>>> detector = AnomalyDetector()
>>> calm = [detector.score_one({"temp": 20.0 + rng.gauss(0, 0.1), "flow": 5.0 + rng.gauss(0, 0.05)})
...         for _ in range(600)]
>>> max(r.score for r in calm[400:]) < 0.5
True
>>> spike = detector.score_one({"temp": 29.0, "flow": 5.0})
>>> spike.score, spike.top[0][0]
(1.0, 'temp')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from twin_stream.domain.detection.baseline import SignalBaseline
from twin_stream.domain.detection.likelihood import AnomalyLikelihood
from twin_stream.domain.detection.multivariate import StreamingPCA
from twin_stream.domain.detection.params import DetectorParams

__all__ = ["AnomalyDetector", "ReadingScore"]

#: A mode's baseline scores a signal only after this many readings in that mode (before, the
#: signal is taken as normal: a mode seen for the first time is not in itself an anomaly).
_MODE_MIN_READINGS = 30
_MAIN_MODE = ""
_SQRT2 = math.sqrt(2.0)


def time_of_day(ts: datetime, buckets: int) -> int:
    """The time-of-day bucket of the device's clock ``ts`` (of ``buckets`` in a day)."""
    return ts.hour * buckets // 24


@dataclass(frozen=True)
class ReadingScore:
    """The score of one reading and what drove it."""

    score: float
    warming_up: bool
    #: per signal: z-score against the device's own baseline, the main contributors first
    top: list[tuple[str, float]]
    baselines: dict[str, float]
    mode: str = _MAIN_MODE
    #: signals whose value lies beyond their whole learned range
    novel: tuple[str, ...] = ()
    #: False while most recent readings are beyond the model's alpha limit
    in_control: bool = True


class AnomalyDetector:
    """Online anomaly scoring for one device (or one univariate series)."""

    def __init__(self, params: DetectorParams | None = None, seed: int = 42) -> None:
        # ``seed`` is kept for the interface: every step here is deterministic.
        self.params = params or DetectorParams()
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget everything learned (after maintenance: a new normal)."""
        self.modes: dict[str, dict[str, SignalBaseline]] = {_MAIN_MODE: {}}
        self.magnitude: dict[str, float] = {}
        self.names: list[str] = []
        self.pca: StreamingPCA | None = None
        self.likelihood = AnomalyLikelihood(self.params)
        self.count = 0
        #: whether the last reading was inside the limits of the multivariate model: the
        #: baselines learn only then (SPC practice: limits come from in-control data)
        self.in_control = True
        #: the last five readings, one bit each: beyond the alpha limit or not
        self.recent_out = 0

    def _mode(self, present: dict[str, float]) -> str:
        if len(present) < 2:
            return _MAIN_MODE  # a univariate series has no pattern of signals to be a mode
        share = self.params.mode_off_share
        off = []
        for name, value in present.items():
            typical = self.magnitude.get(name, 0.0)
            magnitude = abs(value)
            if typical > 0.0 and magnitude <= share * typical:
                off.append(name)
            else:
                self.magnitude[name] = typical + self.params.fading * (magnitude - typical)
                if typical == 0.0:
                    self.magnitude[name] = magnitude
        mode = ",".join(off)
        if mode not in self.modes:
            if len(self.modes) >= self.params.max_modes:
                return _MAIN_MODE
            self.modes[mode] = {}
        return mode

    def deseasonalized(
        self, metrics: dict[str, float | None], ts: datetime
    ) -> dict[str, float | None]:
        """``metrics`` with each signal's time-of-day offset removed where its profile is in use
        (the main mode's): what the failure prediction extrapolates, so that a daily load is not
        taken for a trend."""
        bucket = time_of_day(ts, self.params.season_buckets)
        baselines = self.modes[_MAIN_MODE]
        out: dict[str, float | None] = {}
        for name, value in metrics.items():
            baseline = baselines.get(name)
            out[name] = (
                value if value is None or baseline is None else value - baseline.offset(bucket)
            )
        return out

    def score_one(
        self, metrics: dict[str, float | None], ts: datetime | None = None
    ) -> ReadingScore:
        """Score one reading, then learn from it."""
        p = self.params
        present = {k: v for k, v in metrics.items() if v is not None}
        mode = self._mode(present)
        baselines = self.modes[mode]
        bucket = None if ts is None else time_of_day(ts, p.season_buckets)
        warm = self.count >= p.warmup
        zs: dict[str, float] = {}
        novel: list[str] = []
        for name, value in present.items():
            baseline = baselines.get(name)
            if baseline is None:
                baseline = baselines[name] = SignalBaseline(p)
            known = baseline.count >= (_MODE_MIN_READINGS if mode else 1)
            beyond = warm and known and baseline.novel(value)
            z = baseline.update(value, bucket, learn=self.in_control)
            # Beyond the learned range *and* far from the baseline: a new extreme of ordinary
            # noise (the range of a few hundred readings is only about +-3 sd) is not novel.
            if beyond and abs(z) >= p.protect_z:
                novel.append(name)
            zs[name] = z if known else 0.0
        for name in zs:
            if name not in self.names:
                self.names.append(name)
                self.pca = None  # a new signal: the covariance starts again with it
        if len(self.names) == 1:
            (z,) = zs.values() if zs else (0.0,)
            raw = math.erf(abs(z) / _SQRT2)
            top = list(zs.items())
            out = warm and 1.0 - raw < p.pca_alpha
        elif len(self.names) > 1:
            if self.pca is None:
                self.pca = StreamingPCA(self.names, p)
            vector = [max(-30.0, min(30.0, zs.get(n, 0.0))) for n in self.names]
            result = self.pca.update(vector, always_learn=not warm)
            raw = 1.0 - result.p_value
            out = warm and result.p_value < p.pca_alpha
            self.in_control = not warm or not 0 < self.pca.frozen <= p.freeze_max
            ranked = [n for n, _ in result.top] or sorted(zs, key=lambda n: -abs(zs[n]))
            top = [(n, zs[n]) for n in ranked if n in zs]
        else:
            raw, top, out = 0.0, [], False
        # The likelihood's history learns only in control, like the baselines, so a long
        # episode does not teach it that raw scores of 1 are usual (which would fade the score
        # during the episode and blind it after). A univariate series has no such state (NAB:
        # holding its history cost about 5 points there).
        score = self.likelihood.update(raw, learn=self.in_control)
        # Out of control: most of the last five readings beyond the alpha limit (the causal
        # mean over 5 rows of DETECTION-NOTES); the alert policy holds an anomaly open while so.
        self.recent_out = ((self.recent_out << 1) | out) & 0b11111
        out_of_control = self.recent_out.bit_count() >= 3
        if novel:
            score = 1.0
            top = [(n, zs[n]) for n in novel] + [t for t in top if t[0] not in novel]
        self.count += 1
        # The centres the top signals were scored against (before this reading was learned).
        centers = {name: baselines[name].last_center for name, _ in top[:3]}
        return ReadingScore(
            score=score if warm else 0.0,
            warming_up=not warm,
            top=top,
            baselines=centers,
            mode=mode,
            novel=tuple(novel),
            in_control=not out_of_control,
        )
