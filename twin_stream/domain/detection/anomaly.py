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
from typing import Final

from twin_stream.domain.detection.baseline import SignalBaseline
from twin_stream.domain.detection.likelihood import AnomalyLikelihood
from twin_stream.domain.detection.multivariate import StreamingPCA
from twin_stream.domain.detection.params import DetectorParams
from twin_stream.domain.detection.state import RestoresByAttribute

__all__ = ["MAIN_MODE", "AnomalyDetector", "ReadingScore", "time_of_day"]

#: A mode's baseline scores a signal only after this many readings in that mode (before, the
#: signal is taken as normal: a mode seen for the first time is not in itself an anomaly).
_MODE_MIN_READINGS = 30
#: The main operating mode: no signal "off".
MAIN_MODE: Final = ""
_SQRT2 = math.sqrt(2.0)


def time_of_day(ts: datetime, buckets: int) -> int:
    """The time-of-day bucket of the device's clock ``ts`` (of ``buckets`` in a day)."""
    return ts.hour * buckets // 24


def _by_size(item: tuple[str, float]) -> float:
    """Sort key of a (signal, z) pair: the largest deviation first."""
    return -abs(item[1])


@dataclass(slots=True)
class ReadingScore:
    """The score of one reading and what drove it.

    Read-only by convention, not frozen: one is made per reading, and a frozen dataclass sets
    each field through ``object.__setattr__`` (three times the cost of a plain slot).
    """

    score: float
    warming_up: bool
    #: per signal: z-score against the device's own baseline, the main contributors first
    top: list[tuple[str, float]]
    baselines: dict[str, float]
    mode: str = MAIN_MODE
    #: signals whose value lies beyond their whole learned range
    novel: tuple[str, ...] = ()
    #: False while most recent readings are beyond the model's alpha limit
    in_control: bool = True
    #: the time-of-day bucket of the reading (None without a timestamp)
    bucket: int | None = None


class AnomalyDetector(RestoresByAttribute):
    """Online anomaly scoring for one device (or one univariate series)."""

    def __init__(self, params: DetectorParams | None = None, seed: int = 42) -> None:
        # ``seed`` is kept for the interface: every step here is deterministic.
        self.params = params or DetectorParams()
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget everything learned (after maintenance: a new normal)."""
        self.modes: dict[str, dict[str, SignalBaseline]] = {MAIN_MODE: {}}
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
        #: out of the limits for more than ``freeze_max`` readings: the state is being taken as
        #: the new normal, learned whole (unprotected) until back inside for six readings
        self.adopting = False
        #: readings since the last six in a row inside the limits
        self.unsettled = 0

    def _mode(self, metrics: dict[str, float | None]) -> str:
        share, fading = self.params.mode_off_share, self.params.fading
        magnitudes = self.magnitude
        off = []
        present = 0
        for name, value in metrics.items():
            if value is None:
                continue
            present += 1
            typical = magnitudes.get(name, 0.0)
            magnitude = abs(value)
            if typical > 0.0 and magnitude <= share * typical:
                off.append(name)
            elif typical == 0.0:
                magnitudes[name] = magnitude
            else:
                magnitudes[name] = typical + fading * (magnitude - typical)
        if not off or present < 2:  # a univariate series has no pattern of signals to be a mode
            return MAIN_MODE
        mode = ",".join(off)
        if mode not in self.modes:
            if len(self.modes) >= self.params.max_modes:
                return MAIN_MODE
            self.modes[mode] = {}
        return mode

    def score_one(
        self, metrics: dict[str, float | None], ts: datetime | None = None
    ) -> ReadingScore:
        """Score one reading, then learn from it."""
        p = self.params
        mode = self._mode(metrics)
        baselines = self.modes[mode]
        bucket = None if ts is None else time_of_day(ts, p.season_buckets)
        warm = self.count >= p.warmup
        learn = self.in_control
        protect = not self.adopting
        min_count = _MODE_MIN_READINGS if mode else 1
        zs: dict[str, float] = {}
        novel: list[str] = []
        for name, value in metrics.items():
            if value is None:
                continue
            try:
                baseline = baselines[name]
            except KeyError:
                baseline = baselines[name] = SignalBaseline(p)
                if name not in self.names:
                    # A new signal (no mode has a baseline of it): the covariance starts again.
                    self.names.append(name)
                    self.pca = None
            known = baseline.count >= min_count
            lo, hi = baseline.lo, baseline.hi  # the range learned before this value
            z = baseline.update(value, bucket, learn, protect)
            # Beyond the learned range *and* far from the baseline: a new extreme of ordinary
            # noise (the range of a few hundred readings is only about +-3 sd) is not novel.
            if abs(z) >= p.novelty_z and warm and known and baseline.novel(value, lo, hi):
                novel.append(name)
            zs[name] = z if known else 0.0
        names = self.names
        if len(names) == 1:
            (z,) = zs.values() if zs else (0.0,)
            raw = math.erf(abs(z) / _SQRT2)
            top = list(zs.items())
            out = warm and 1.0 - raw < p.pca_alpha
        elif len(names) > 1:
            if self.pca is None:
                self.pca = StreamingPCA(names, p)
            # Each z clipped to [-30, 30] (as max(-30, min(30, z)) would, NaN to 30).
            vector = []
            for name in names:
                z = zs.get(name, 0.0)
                z = z if z < 30.0 else 30.0
                vector.append(z if z > -30.0 else -30.0)
            result = self.pca.update(vector, not warm or self.adopting)
            raw = 1.0 - result.p_value
            out = warm and result.p_value < p.pca_alpha
            # Out of the limits (most of the time) for more than freeze_max readings: the state
            # is the new normal, learned whole (the baselines unprotected, the covariance
            # always) until six readings in a row are inside again. Without this, a step of
            # many sd is learned only at protect_z sd a reading, and each reading that falls
            # inside by chance restarts the covariance's freeze: an alert storm of ~1,000
            # readings after a permanent step at protect_z = 3.
            calm = not out and not self.recent_out
            self.unsettled = 0 if calm else self.unsettled + 1
            if self.unsettled > p.freeze_max:
                self.adopting = True
            elif calm:
                self.adopting = False
            self.in_control = self.adopting or not warm or not 0 < self.pca.frozen <= p.freeze_max
            if result.top:
                top = [(n, zs[n]) for n, _ in result.top if n in zs]
            else:
                top = sorted(zs.items(), key=_by_size)
        else:
            raw, top, out = 0.0, [], False
        # The likelihood's history learns only in control, like the baselines, so a long
        # episode does not teach it that raw scores of 1 are usual (which would fade the score
        # during the episode and blind it after). A univariate series has no such state (NAB:
        # holding its history cost about 5 points there).
        score = self.likelihood.update(raw, self.in_control)
        # Out of control: most of the last five readings beyond the alpha limit (the causal
        # mean over 5 rows of DETECTION-NOTES); the alert policy holds an anomaly open while so.
        self.recent_out = ((self.recent_out << 1) | out) & 0b11111
        out_of_control = self.recent_out.bit_count() >= 3
        if novel:
            score = 1.0
            top = [(n, zs[n]) for n in novel] + [t for t in top if t[0] not in novel]
        self.count += 1
        # The centres the top signals were scored against (before this reading was learned).
        centers = {}
        for name, _ in top[:3]:
            centers[name] = baselines[name].last_center
        return ReadingScore(
            score if warm else 0.0,
            not warm,
            top,
            centers,
            mode,
            tuple(novel),
            not out_of_control,
            bucket,
        )
