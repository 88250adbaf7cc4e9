"""Data-quality conditions: one alert per (signal, issue), never merged with a device fault; a
warning when a life-supporting device or a safety signal loses its data, otherwise info. While
a signal has one, the device faults rooted in it do not page (the data is bad, not the
device)."""

from __future__ import annotations

from datetime import datetime

from twin_stream.domain.alerting.merge import PolicyCore
from twin_stream.domain.alerting.params import LIFE_SUPPORT_TYPES, SAFETY_SIGNALS
from twin_stream.domain.detection.quality import QualityFinding, QualityIssue
from twin_stream.domain.events import Alert, Severity

__all__ = ["QualityConditions"]


class QualityConditions(PolicyCore):
    """The policy's data-quality feed (:meth:`on_quality`)."""

    def on_quality(self, ts: datetime, seq: int, findings: list[QualityFinding]) -> list[Alert]:
        """Feed the data-quality conditions that hold now (all of them, every reading).

        Each (signal, issue) is one ``data_quality`` alert, resolved once absent for
        ``quality_clear_readings``. While a signal has one, anomalies and predicted failures
        rooted in it do not page: the data is bad, not the device.
        """
        self._tick(seq)
        p, events = self.params, []
        now = {f"data_quality:{f.metric}:{f.issue}": f for f in findings} if findings else {}
        for key, finding in now.items():
            c = self._condition(key, "data_quality")
            c.calm = 0
            if not c.active:
                self._activate(c, key)
                c.seq_first = seq
            c.peak = c.severity = self._quality_severity(finding.metric, finding.issue)
            c.text = f"data quality ({finding.issue}): {finding.detail}"
            c.signature = f"data_quality {finding.metric} {finding.issue}"
            c.details = {"metric": finding.metric, "issue": finding.issue}
        # (Syncing and resetting below change no other condition's activity: one list serves.)
        active = []
        for key, c in self.conditions.items():
            if c.active:
                active.append((key, c))
        for key, c in active:
            if c.kind == "data_quality" and key not in now:
                c.calm += 1
                if c.calm >= p.quality_clear_readings:
                    c.reset()
                    what = f"{c.details.get('metric')} {c.details.get('issue')}"
                    reason = f"{what} absent for {p.quality_clear_readings} readings"
                    events += self._sync(key, ts, seq, reason)
        for key in now:
            events += self._sync(key, ts, seq)
        # A finding appearing or ending changes whether the device's own alerts may page.
        for _, c in active:
            if c.kind in ("anomaly", "predicted_failure"):
                self._settle(c)
                events += self._sync(c.slot, ts, seq)
        return events

    def _quality_severity(self, metric: str, issue: QualityIssue) -> Severity:
        if issue == "clock_skew":
            return "info"
        if self.device_type in LIFE_SUPPORT_TYPES:
            return "warning"
        return "warning" if metric in SAFETY_SIGNALS.get(self.device_type, ()) else "info"
