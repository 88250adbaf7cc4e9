"""Streaming PCA of a device's standardised signals: Hotelling's T² and the residual Q (SPE).

The input is the vector z of per-signal z-scores (each signal against its own baseline). An
exponentially weighted covariance of z is the device's normal; every ``pca_refresh`` readings
it is eigen-decomposed, keeping the first k components that explain ``pca_variance`` of it:

* T² = sum_i (z . P_i)^2 / lambda_i: how far inside the normal subspace (a known pattern,
  pushed too far);
* Q = ||z - P P^T z||^2: how far off it (a broken relation between signals);
* per signal, the share of each (T²: z ⊙ P Λ⁻¹ Pᵀ z; Q: the squared residual) is the
  explanation.

Each statistic becomes a tail probability: T² against chi²(k) (the large-n limit of its F
distribution) and Q against Box's g·chi²(h) with g = θ₂/θ₁ and h = θ₁²/θ₂ (Box 1954, as used
for SPE limits by Nomikos and MacGregor 1995), both through the Wilson-Hilferty normal
approximation of chi² (no scipy on the hot path). The covariance learns only while both are
inside their limits at ``pca_alpha`` (as SKAB's T²+Q sets its limits from normal data), so a
fault is not learned as normal, for at most ``freeze_max`` readings in a row.

The health index's frozen reference (:mod:`~twin_stream.domain.detection.health`) takes its
chi² quantile (:func:`chi2_ppf`) and the shrinkage of its correlation matrix
(:func:`oas_shrinkage`) from here too.

>>> import random
>>> from twin_stream.domain.detection.params import DetectorParams
>>> rng = random.Random(1)
>>> pca = StreamingPCA(["a", "b"], DetectorParams())
>>> for _ in range(600):
...     u = rng.gauss(0, 1)
...     _ = pca.update([u, u + rng.gauss(0, 0.1)])
>>> together, apart = pca.score([2.0, 2.0]), pca.score([2.0, -2.0])
>>> together.p_value > 0.01, apart.p_value < 1e-6, apart.top[0][0] in ("a", "b")
(True, True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from operator import mul
from statistics import NormalDist
from typing import Any

import numpy as np

from twin_stream.domain.detection.params import DetectorParams
from twin_stream.domain.detection.state import restore_attributes

__all__ = ["PCAScore", "StreamingPCA", "chi2_ppf", "chi2_sf", "oas_shrinkage"]

_SQRT2 = math.sqrt(2.0)


def chi2_sf(x: float, dof: float) -> float:
    """P(X > x) for X ~ chi²(dof), by the Wilson-Hilferty cube-root normal approximation.

    >>> round(chi2_sf(6.635, 1), 3), round(chi2_sf(9.21, 2), 3)
    (0.01, 0.01)
    """
    if x <= 0.0:
        return 1.0
    c = 2.0 / (9.0 * dof)
    z = ((x / dof) ** (1.0 / 3.0) - (1.0 - c)) / math.sqrt(c)
    return 0.5 * math.erfc(z / _SQRT2)


def chi2_ppf(q: float, dof: float) -> float:
    """The ``q`` quantile of chi²(dof), by Wilson and Hilferty's cube-root normal approximation
    (1931; within ~1 % of the exact quantile for dof >= 2 in the upper tail).

    >>> round(chi2_ppf(0.99, 2), 1), round(chi2_ppf(0.999, 24), 1)
    (9.2, 51.3)
    """
    c = 2.0 / (9.0 * dof)
    z = NormalDist().inv_cdf(q)
    return dof * max(1.0 - c + z * math.sqrt(c), 0.0) ** 3


def oas_shrinkage(corr: np.ndarray, n: int) -> float:
    """The Oracle Approximating Shrinkage weight towards the identity (Chen et al. 2010,
    eq. 23) of a p x p sample correlation matrix from n readings."""
    p = corr.shape[0]
    if p < 2:
        return 0.0
    tr = float(np.trace(corr))
    tr2 = float((corr * corr).sum())
    den = (n + 1.0 - 2.0 / p) * (tr2 - tr * tr / p)
    if den <= 0.0:
        return 1.0
    return float(min(((1.0 - 2.0 / p) * tr2 + tr * tr) / den, 1.0))


@dataclass(slots=True)
class PCAScore:
    """The score of one vector (read-only by convention, not frozen: one is made per reading,
    and a frozen dataclass costs three times as much to build)."""

    t2: float
    q: float
    #: probability of a reading at least this extreme under the normal model (Šidák over T², Q)
    p_value: float
    #: (signal, share of T² + Q), largest first; empty when nothing stands out
    top: list[tuple[str, float]]


class StreamingPCA:
    """T² and Q of a fixed set of signals, learned online (see module docstring)."""

    def __init__(self, names: list[str], params: DetectorParams) -> None:
        self.names = list(names)
        self.params = params
        p = len(names)
        self.cov = np.eye(p)
        self.count = 0
        self.frozen = 0
        #: readings learned since the last decomposition, folded into ``cov`` only then (the
        #: covariance is read nowhere else): the same weights, one matrix product per
        #: ``pca_refresh`` readings instead of an outer product per reading
        self.pending: list[tuple[list[float], float]] = []
        self._decompose()

    def _fold(self) -> None:
        """Apply the pending updates C <- (1 - a) C + a x x^T, in order, in one product."""
        if not self.pending:
            return
        keep = 1.0
        weights = []
        for _, a in reversed(self.pending):
            weights.append(a * keep)
            keep *= 1.0 - a
        weights.reverse()
        # The readings as rows of one array: from one flat run of floats (the values
        # np.asarray would give, at half its cost of reading a list of lists).
        n, p = len(self.pending), len(self.names)
        flat = chain.from_iterable([z for z, _ in self.pending])
        x = np.fromiter(flat, dtype=np.float64, count=n * p).reshape(n, p)
        self.cov = keep * self.cov + (x.T * np.asarray(weights)) @ x
        self.pending.clear()

    def _decompose(self) -> None:
        self._fold()
        lam_a, vec = np.linalg.eigh(self.cov)
        # Largest first, floored; the cumulative share and the rest in plain Python floats
        # (the same sums, left to right: numpy's small-array calls cost more than they do).
        lam = lam_a.tolist()[::-1]
        total = 0.0
        for value in lam:
            total += value
        floor = 1e-6 * (total if total > 1e-12 else 1e-12)
        lam = [value if value > floor else floor for value in lam]
        total = 0.0
        for value in lam:
            total += value
        target = self.params.pca_variance * total
        k, running = 0, 0.0
        for value in lam:
            k += 1
            running += value
            if running >= target:
                break
        self.k = k
        self.components = np.ascontiguousarray(vec[:, ::-1][:, :k])
        self._inv_lam: list[float] = [1.0 / value for value in lam[:k]]
        self.inv_lam = np.asarray(self._inv_lam)
        self._rows: list[list[float]] = self.components.tolist()
        self._cols = self._columns()
        rest = lam[k:]
        # Box's approximation of Q's distribution: g chi²(h).
        theta1 = theta2 = 0.0
        for value in rest:
            theta1 += value
            theta2 += value * value
        self.q_g = theta2 / theta1 if theta1 > 0 else 0.0
        self.q_h = theta1**2 / theta2 if theta2 > 0 else 0.0

    def score(self, z: list[float]) -> PCAScore:
        """T², Q and their tail probability for one vector of z-scores (no learning)."""
        # Plain Python for the per-reading products: with p <= 8 signals, numpy's per-call
        # overhead cost more than the arithmetic (4.6 us against 1.7 us here). Every sum runs
        # left to right from 0.0 (no ``sum()``: from Python 3.12 it compensates), the products
        # through ``map(mul, ...)``: the same IEEE operations, a third of the bytecode.
        rows, k = self._rows, self.k
        if len(z) != len(rows):
            raise ValueError(f"{len(z)} z-scores for {len(rows)} signals")
        y = []  # z in the components' coordinates: y_j = sum_i z_i P_ij
        for column in self._cols:
            y_j = 0.0
            for term in map(mul, z, column):
                y_j += term
            y.append(y_j)
        t2 = 0.0
        for term in map(mul, map(mul, y, y), self._inv_lam):
            t2 += term
        p_t2 = chi2_sf(t2, k)
        q = 0.0
        p_q = 1.0
        if k < len(z):
            # The residual z - P y is orthogonal to the components (P's columns are
            # orthonormal), so its squared length is |z|^2 - |y|^2: two sums of squares, not
            # a p x k product (floored at 0 against rounding).
            for term in map(mul, z, z):
                q += term
            for term in map(mul, y, y):
                q -= term
            if 0.0 > q:
                q = 0.0
            if self.q_g > 0:
                p_q = chi2_sf(q / self.q_g, self.q_h)
        p_min = p_q if p_q < p_t2 else p_t2  # min(p_t2, p_q)
        p_value = 1.0 - (1.0 - p_min) ** 2  # Šidák: two statistics
        top = self._top(z, y) if p_min < self.params.pca_alpha else []
        return PCAScore(t2, q, p_value, top)

    def _top(self, z: list[float], y: list[float]) -> list[tuple[str, float]]:
        """The three largest shares of T² + Q: per signal z ⊙ P Λ⁻¹ y, plus its squared
        residual.

        The two matrix products stay BLAS's (``dot``, the same ``gemv`` as ``@`` at a third of
        its call overhead): a loop would round them otherwise, and the ranking must not change.
        The element-wise steps are exact either way, and cheaper in plain Python; the ranking
        is numpy's ``argsort`` (not stable: ties keep the order it gives them).
        """
        yv = np.asarray(y)
        weighted = self.components.dot(yv * self.inv_lam).tolist()
        share = [zi * wi for zi, wi in zip(z, weighted, strict=True)]
        if self.k < len(z):
            fitted = self.components.dot(yv).tolist()
            share = [s + (zi - f) * (zi - f) for s, zi, f in zip(share, z, fitted, strict=True)]
        order = np.asarray([-abs(s) for s in share]).argsort()[:3].tolist()
        return [(self.names[i], share[i]) for i in order]

    def update(self, z: list[float], always_learn: bool = False) -> PCAScore:
        """Score ``z``, then learn it while inside the limits (or always, in a warm-up)."""
        result = self.score(z)
        p = self.params
        inside = always_learn or result.p_value >= p.pca_alpha
        self.frozen = 0 if inside else self.frozen + 1
        if inside or self.frozen > p.freeze_max:
            # 1/n weights up to the baseline's horizon, then a fixed fading factor
            # (DETECTION-NOTES, "Streaming"); max() written out (builtin calls cost here).
            a = 1.0 / (self.count + 2)
            if p.fading > a:
                a = p.fading
            self.pending.append((z, a))
            self.count += 1
            if self.count % p.pca_refresh == 0:
                self._decompose()
        return result

    def __getstate__(self) -> dict[str, Any]:
        # ``_cols`` is derived (``_rows`` transposed): not saved, rebuilt on load.
        state = self.__dict__.copy()
        del state["_cols"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_attributes(self, state)
        self._cols = self._columns()

    def _columns(self) -> list[list[float]]:
        """The components' columns, for the per-reading projection (sharing ``_rows``' floats:
        a few hundred bytes a device)."""
        return [list(column) for column in zip(*self._rows, strict=True)]
