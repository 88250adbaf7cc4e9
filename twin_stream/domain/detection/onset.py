"""Onsets: a run of anomalous readings is one alarm, not one alarm per reading.

A detector's score stays high for as long as a condition lasts; an alarm is news only at its
start. :class:`OnsetFilter` passes the first high score of a run and damps the rest, which is
what the alert policy does with alerts and what NAB's scoring (one detection per window, every
extra detection a false positive) expects of an ``anomaly_score`` column.

>>> f = OnsetFilter()
>>> [f.update(s) for s in [0.1, 0.995, 0.999, 0.2]]
[0.1, 0.995, 0.4995, 0.1]
"""

from __future__ import annotations

from twin_stream.domain.detection.params import DetectorParams

__all__ = ["OnsetFilter"]


class OnsetFilter:
    """Streaming: pass onsets of high scores, damp their continuation."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = params or DetectorParams()
        self.inside = False
        self.calm = 0
        self.since_onset = 10**9

    def update(self, score: float) -> float:
        p = self.params
        self.since_onset += 1
        if not self.inside:
            if score >= p.onset_enter and self.since_onset > p.onset_gap:
                self.inside, self.calm, self.since_onset = True, 0, 0
                return score
            return score * 0.5 if score >= p.onset_enter else score
        self.calm = self.calm + 1 if score < p.onset_leave else 0
        if self.calm >= p.onset_quiet:
            self.inside = False
        return score * 0.5
