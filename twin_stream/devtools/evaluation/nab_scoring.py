"""NAB's published scoring rules, implemented here (Lavin & Ahmad 2015, NAB v1.1).

For one cost profile (weights ``A_TP``, ``A_FP``, ``A_FN``):

* rows in the probation period (the first 15 % of a file, at most 750 rows) are not scored;
* inside a labelled window only the best (= earliest) detection counts, weighted by the scaled
  sigmoid ``2 / (1 + exp(5 x)) - 1`` of its relative position ``x`` in the window
  (-1 at the left edge, 0 at the right edge), normalised so the left edge scores ``A_TP``;
* a window without a detection costs ``A_FN``;
* every detection outside a window costs ``A_FP`` times the scaled sigmoid of its distance
  past the previous window's right edge (in window widths), or the full ``A_FP`` if no window
  precedes it;
* one threshold per detector and profile is chosen to maximise the sum over the corpus, and
  the sum is normalised so that the null detector scores 0 and the perfect one 100.

>>> profile = PROFILES["standard"]
>>> rows = [ScoredRow(0.0, None, -0.11), ScoredRow(0.9, "w1", 1.0)]
>>> best_threshold([rows], {"w1"}, profile)[1]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PROFILES",
    "Profile",
    "ScoredRow",
    "best_threshold",
    "normalized_score",
    "scaled_sigmoid",
    "sweep_rows",
]


@dataclass(frozen=True)
class Profile:
    tp: float
    fp: float
    fn: float


#: The three cost profiles of NAB (config/profiles.json).
PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}

PROBATION_PERCENT = 0.15


def scaled_sigmoid(position: float) -> float:
    """NAB's weight of a detection at a relative position (see module docstring)."""
    if position >= 3.0:  # far past any window: a full false positive
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


@dataclass(frozen=True)
class ScoredRow:
    """One scorable row: its anomaly score, its window (None outside) and its weight."""

    anomaly_score: float
    window: str | None
    weight: float  # what a detection here adds (TP part) or costs (FP part, negative)


def probation_length(rows: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * rows), PROBATION_PERCENT * 5000))


def sweep_rows(
    name: str, scores: Sequence[float], windows: Sequence[tuple[int, int]], profile: Profile
) -> list[ScoredRow]:
    """The scorable rows of one file; ``windows`` are inclusive (first, last) row indices."""
    max_tp = scaled_sigmoid(-1.0)
    rows: list[ScoredRow] = []
    probation = probation_length(len(scores))
    window_of = {}
    for first, last in windows:
        for i in range(first, last + 1):
            window_of[i] = (first, last)
    prev_end: int | None = None
    prev_width = 0.0
    for i, score in enumerate(scores):
        bounds = window_of.get(i)
        if bounds is not None:
            first, last = bounds
            width = float(last - first + 1)
            position = -(last - i + 1) / width
            weight = scaled_sigmoid(position) * profile.tp / max_tp
            window: str | None = f"{name}|{first}"
        else:
            past = 3.0 if prev_end is None else abs(prev_end - i) / max(prev_width - 1.0, 1.0)
            weight = scaled_sigmoid(past) * profile.fp
            window = None
        if i >= probation:
            rows.append(ScoredRow(score, window, weight))
        if bounds is not None and i == bounds[1]:
            prev_end, prev_width = i, float(bounds[1] - bounds[0] + 1)
    return rows


def best_threshold(
    files: Sequence[Sequence[ScoredRow]], windows: set[str], profile: Profile
) -> tuple[float, float]:
    """The threshold that maximises the corpus's raw score, and that score.

    ``windows`` names the labelled windows to score (each costs ``A_FN`` until detected). NAB's
    sweeper scores only windows with a row past the probation period: pass the windows of the
    rows, as ``eval nab`` does, to match it.
    """
    rows = sorted((r for f in files for r in f), key=lambda r: r.anomaly_score, reverse=True)
    best_in_window = dict.fromkeys(windows, -profile.fn)
    fp_total = 0.0
    best = (1.1, sum(best_in_window.values()))  # a threshold above every score: no detection
    i = 0
    while i < len(rows):
        threshold = rows[i].anomaly_score
        while i < len(rows) and rows[i].anomaly_score == threshold:
            row = rows[i]
            if row.window is None:
                fp_total += row.weight
            else:
                best_in_window[row.window] = max(best_in_window[row.window], row.weight)
            i += 1
        total = fp_total + sum(best_in_window.values())
        if total > best[1]:
            best = (threshold, total)
    return best


def normalized_score(raw: float, n_windows: int, profile: Profile) -> float:
    """100 x (raw - null) / (perfect - null): null never detects, perfect hits every window
    at its left edge."""
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)


def raw_score_at(
    files: Sequence[Sequence[ScoredRow]], windows: set[str], threshold: float, profile: Profile
) -> float:
    """The raw score of ``files`` at a given ``threshold`` (an alarm: a score at or above it):
    what a threshold chosen on other files earns on these (NAB's rules, as :func:`best_threshold`
    scores each of its candidates)."""
    best_in_window = dict.fromkeys(windows, -profile.fn)
    fp_total = 0.0
    for rows in files:
        for row in rows:
            if row.anomaly_score < threshold:
                continue
            if row.window is None:
                fp_total += row.weight
            else:
                best_in_window[row.window] = max(best_in_window[row.window], row.weight)
    return fp_total + sum(best_in_window.values())
