"""Anomaly conditions: a score (or an out-of-control device) sustained for a few readings opens
one, rooted in its top signal; it pages only when a signal heads for its failure limit (or, on a
device type without limits, when it lasts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from twin_stream.domain.alerting.merge import RANK, PolicyCore
from twin_stream.domain.alerting.state import _Condition
from twin_stream.domain.alerting.wording import anomaly_text
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.events import Alert, ContributionLike, Severity

__all__ = ["AnomalyConditions"]


class AnomalyConditions(PolicyCore):
    """The policy's anomaly feed (:meth:`on_score`)."""

    def on_score(
        self,
        ts: datetime,
        seq: int,
        score: float,
        top: Sequence[ContributionLike],
        in_control: bool = True,
    ) -> list[Alert]:
        """Feed one reading's anomaly score and its top contributions; return alert events.

        An open anomaly resolves once the score has been low *and* the device back in control
        (``in_control``, from the detector) for ``clear_min_readings`` readings: the score
        marks a change, the control state says whether the device is back to its normal.
        """
        self._tick(seq, ts)
        events = self._resume(ts, seq)
        p, c = self.params, self._condition("anomaly", "anomaly")
        # Raised by a surprising change (the score) or by a device that stays out of its normal
        # (SPC: most of the last five readings beyond the model's alpha limit).
        raised = score >= p.anomaly_raise or not in_control
        c.above = c.above + 1 if raised else 0
        if c.cooldown:
            c.cooldown -= 1
        if not c.active:
            if raised:
                c.streak += 1
                if c.seq_first is None:
                    c.seq_first = seq
            else:
                c.streak, c.seq_first = 0, None
            if c.streak < p.anomaly_min_readings or c.cooldown:
                return events
            self._activate(c, "fault:" + (top[0].metric if top else ""))
            c.quiet = self.quiet > 0
        else:
            c.calm = c.calm + 1 if score < p.anomaly_clear and in_control else 0
            if c.calm >= p.clear_min_readings:
                slot = c.slot
                c.reset(cooldown=p.cooldown_readings)
                reason = f"score below {p.anomaly_clear:g} for {p.clear_min_readings} readings"
                return events + self._sync(slot, ts, seq, reason)
        if top:
            c.contributions = list(top[:3])
        c.peak = max(c.peak, self._anomaly_severity(score, c), key=RANK.__getitem__)
        c.text = anomaly_text(self.device_type, c.contributions)
        # The top signals of a noisy score change reading by reading: that alone is no news.
        # An anomaly's alert is updated when its severity (or what it is joined with) changes.
        c.signature = "anomaly"
        self._settle(c)
        c.details = {"root": c.slot.removeprefix("fault:"), "score": round(score, 4)}
        return events + self._sync(c.slot, ts, seq)

    def _anomaly_severity(self, score: float, c: _Condition) -> Severity:
        p = self.params
        if c.quiet:
            return "info"
        if not self._has_limits:
            # No limits to head for: a sustained anomaly is all the policy can know.
            return "warning" if c.above >= p.unlimited_sustain_readings else "info"
        # On the learning day only a signal half-way to its failure limit pages (an occlusion,
        # not a chiller's first morning load, which goes a quarter of the way).
        share = p.learning_min_share if self._learning_day() else p.min_share_to_limit
        # Unusual is not the same as failing: with limits known, an anomaly pages only when a
        # signal moves towards its failure limit. A pump pausing or a battery charging is
        # unusual for a moment but harmless: that is "info".
        heading = {x.metric for x in c.contributions if self._towards_failure(x, share)}
        # A signal whose predicted failure already has an alert open is that alert's root
        # cause: the anomaly does not page a second time for it.
        covered = {m for m in heading if self._predicting(m)}
        if heading - covered:
            return "critical" if score >= p.anomaly_critical else "warning"
        return "info"

    def _predicting(self, metric: str) -> bool:
        """Whether ``metric``'s predicted failure has an alert open now."""
        c = self.conditions.get(f"predicted_failure:{metric}")
        return c is not None and c.active

    def _towards_failure(self, c: ContributionLike, share: float | None = None) -> bool:
        spec = METRICS_BY_TYPE.get(self.device_type, {}).get(c.metric)
        if spec is None or abs(c.deviation) < self.params.min_deviation_sd:
            return False
        limit = spec.failure_above if spec.failure_above is not None else spec.failure_below
        if limit is None or limit == c.baseline:
            return False
        if share is None:
            share = self.params.min_share_to_limit
        return (c.value - c.baseline) / (limit - c.baseline) >= share
