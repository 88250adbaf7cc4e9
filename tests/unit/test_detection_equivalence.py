"""The fast paths of the detector give exactly what the plain formulations give.

The per-reading code was tuned for speed (issue 12: 25 us per reading) on one condition: every
score, bit for bit, stays what it was. Each tuned step is checked here against the plain
formulation it replaced (written out below as the reference), with exact equality: not
``approx``. Arithmetic done in another order would round otherwise in the last bit, and these
tests would see it.
"""

from __future__ import annotations

import math
import pickle
import random
import struct
from collections import deque
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_stream.domain.detection.baseline import SignalBaseline
from twin_stream.domain.detection.detector import _round2
from twin_stream.domain.detection.likelihood import AnomalyLikelihood, log_score
from twin_stream.domain.detection.multivariate import StreamingPCA, chi2_sf
from twin_stream.domain.detection.params import DetectorParams
from twin_stream.domain.detection.quality import DROPOUT_WINDOW, QualityMonitor

PARAMS = DetectorParams()


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


# -- deviations rounded to two places -------------------------------------------------------------

EDGES = [0.0, -0.0, 0.005, -0.005, 0.015, 1.005, 2.675, 0.125, -0.125, 1e-300, 5e-324, 1e9, 1e11]
EDGES += [1e300, -1e300, math.inf, -math.inf, 0.004999999999999999, 0.49999999999999994]


@pytest.mark.parametrize("x", EDGES)
def test_round2_is_round_to_two_places_at_the_edges(x: float) -> None:
    assert bits(_round2(x)) == bits(round(x, 2))
    assert math.isnan(_round2(math.nan))


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False) | st.integers(-(10**7), 10**7).map(lambda i: (i + 0.5) / 100))
def test_round2_is_round_to_two_places(x: float) -> None:
    """Any float, and the halves of hundredths where rounding a product could go wrong."""
    for value in (x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf)):
        assert bits(_round2(value)) == bits(round(value, 2))


# -- T² and Q -------------------------------------------------------------------------------------


def reference_score(pca: StreamingPCA, z: list[float]) -> tuple[Any, ...]:
    """StreamingPCA.score as first written: index loops, numpy for the contributions."""
    rows, inv_lam, k = pca.components.tolist(), pca.inv_lam.tolist(), pca.k
    y = [0.0] * k
    for zi, row in zip(z, rows, strict=True):
        for j in range(k):
            y[j] += zi * row[j]
    t2 = 0.0
    for j in range(k):
        t2 += y[j] * y[j] * inv_lam[j]
    p_t2 = chi2_sf(t2, k)
    q, p_q = 0.0, 1.0
    if k < len(z):
        for zi, row in zip(z, rows, strict=True):
            r = zi
            for j in range(k):
                r -= row[j] * y[j]
            q += r * r
        if pca.q_g > 0:
            p_q = chi2_sf(q / pca.q_g, pca.q_h)
    p_min = min(p_t2, p_q)
    p_value = 1.0 - (1.0 - p_min) ** 2
    top: list[tuple[str, float]] = []
    if p_min < pca.params.pca_alpha:
        x, yv = np.asarray(z), np.asarray(y)
        share = x * (pca.components @ (yv * pca.inv_lam))
        if k < len(z):
            residual = x - pca.components @ yv
            share = share + residual * residual
        order = np.argsort(-np.abs(share))
        top = [(pca.names[i], float(share[i])) for i in order[:3]]
    return t2, q, p_value, top


def fitted_pca(p: int, seed: int) -> StreamingPCA:
    rng = random.Random(seed)
    pca = StreamingPCA([f"s{i}" for i in range(p)], PARAMS)
    for i in range(400):
        u = rng.gauss(0, 1)
        z = [u * (0.5 + j / p) + rng.gauss(0, 0.2 + 0.1 * j) for j in range(p)]
        pca.update(z, always_learn=i < 150)
    return pca


PCAS = {(p, seed): fitted_pca(p, seed) for p in (2, 3, 4, 8) for seed in (1, 2)}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(PCAS)),
    st.lists(st.floats(-30, 30, allow_nan=False) | st.just(0.0), min_size=8, max_size=8),
)
def test_pca_score_is_that_of_the_plain_loops(key: tuple[int, int], zs: list[float]) -> None:
    pca = PCAS[key]
    z = zs[: len(pca.names)]
    result = pca.score(z)
    t2, q, p_value, top = reference_score(pca, z)
    assert (result.t2, result.top) == (t2, top)
    # Q is |z|^2 - |y|^2 (the residual is orthogonal to the components), not the residual's
    # own sum of squares: equal up to rounding of the squared lengths.
    scale = 1.0 + sum(zi * zi for zi in z)
    assert math.isclose(result.q, q, rel_tol=1e-9, abs_tol=1e-12 * scale)
    assert math.isclose(result.p_value, p_value, rel_tol=1e-9, abs_tol=1e-12)


def test_pca_state_leaves_out_its_derived_columns_and_restores_them() -> None:
    pca = PCAS[(4, 1)]
    state = pca.__getstate__()
    assert "_cols" not in state and "_rows" in state  # the saved state is as it always was
    restored = pickle.loads(pickle.dumps(pca))
    assert restored._cols == [list(c) for c in zip(*pca._rows, strict=True)] == pca._cols
    old = StreamingPCA.__new__(StreamingPCA)  # state saved before the columns existed
    old.__setstate__(dict(state))
    z = [0.3, -2.0, 1.1, 4.0]
    assert old.score(z) == pca.score(z)


def test_a_z_vector_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError):
        PCAS[(4, 1)].score([1.0, 2.0])


# -- the anomaly likelihood -----------------------------------------------------------------------


class ReferenceLikelihood:
    """AnomalyLikelihood.update as first written."""

    def __init__(self) -> None:
        p = PARAMS
        self.short: deque[float] = deque(maxlen=p.likelihood_short)
        self.long: deque[float] = deque(maxlen=p.likelihood_long)
        self.short_sum = self.sum = self.sum_sq = 0.0
        self.count = 0

    def update(self, raw: float, learn: bool) -> float:
        p = PARAMS
        if len(self.short) == self.short.maxlen:
            self.short_sum -= self.short[0]
        self.short.append(raw)
        self.short_sum += raw
        recent = self.short_sum / len(self.short)
        if not learn and self.count >= p.likelihood_learn:
            return self.score(recent)
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
        return self.score(recent)

    def score(self, recent: float) -> float:
        p, n = PARAMS, len(self.long)
        mean = max(self.sum / n, p.likelihood_min_mean)
        var = max(self.sum_sq / n - (self.sum / n) ** 2, p.likelihood_min_var)
        z = (recent - mean) / math.sqrt(var)
        likelihood = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        return min(1.0, math.log(1.0000000001 - likelihood) / math.log(1.0 - 0.99999))


def test_the_likelihood_is_that_of_the_plain_formulation() -> None:
    rng = random.Random(4)
    fast, reference = AnomalyLikelihood(PARAMS), ReferenceLikelihood()
    for i in range(2 * PARAMS.likelihood_long + 500):
        raw = 1.0 if i % 997 < 12 else rng.random() ** 3
        learn = i % 13 != 0 and not 3000 <= i < 3100
        assert bits(fast.update(raw, learn)) == bits(reference.update(raw, learn))
    assert log_score(0.99999999) == 1.0
    assert math.isclose(log_score(0.0), 0.0, abs_tol=1e-9)


# -- data quality and the baselines' range --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=400))
def test_the_dropout_window_counts_stay_those_of_a_recount(missing: list[bool]) -> None:
    """The present-throughout shortcut keeps the counts of the window exact."""
    q = QualityMonitor("infusion_pump")
    for gone in missing:
        q.update({"flow_rate": None if gone else 100.0 + len(missing) % 7})
        s = q.signals["flow_rate"]
        window = list(s.missing)
        assert len(window) <= DROPOUT_WINDOW
        assert s.missed == sum(window)
        assert s.switches == sum(a != b for a, b in zip(window, window[1:], strict=False))


def test_novelty_is_judged_against_the_range_before_the_value() -> None:
    rng = random.Random(2)
    baseline = SignalBaseline(PARAMS)
    for _ in range(300):
        x = 10 + rng.gauss(0, 1) + (8 if rng.random() < 0.01 else 0)
        before = baseline.novel(x)
        lo, hi = baseline.lo, baseline.hi
        baseline.update(x, 3)
        assert baseline.novel(x, lo, hi) == before


# -- restored state -------------------------------------------------------------------------------


def test_restored_state_is_the_saved_state_attribute_for_attribute() -> None:
    """Restoring attribute by attribute (detection.state) loses and reorders nothing: the
    restored monitor saves to the same bytes, and goes on with the same outputs."""
    from datetime import UTC, datetime, timedelta

    from twin_stream.domain.monitor import DeviceMonitor

    rng = random.Random(9)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    monitor = DeviceMonitor("pump-0001", "infusion_pump")

    def feed(m: DeviceMonitor, start: int, n: int) -> list[Any]:
        r = random.Random(start)
        out = []
        for i in range(start, start + n):
            reading: dict[str, float | None] = {
                "flow_rate": 100 + r.gauss(0, 1),
                "line_pressure": None if r.random() < 0.02 else 55 + r.gauss(0, 2),
                "motor_current": 0.25 + r.gauss(0, 0.01) + (0.5 if i % 900 < 5 else 0.0),
                "battery": 97 + r.gauss(0, 0.3),
            }
            o = m.on_reading(t0 + timedelta(seconds=10 * i), i, reading)
            out.append((o.score, o.contributions, o.predictions, o.alerts))
        return out

    feed(monitor, 0, 1200 + rng.randrange(100))
    saved = pickle.dumps(monitor.detector.__dict__, protocol=5)
    restored = DeviceMonitor.loads(monitor.dumps())
    assert pickle.dumps(restored.detector.__dict__, protocol=5) == saved
    assert feed(restored, 5000, 400) == feed(monitor, 5000, 400)
