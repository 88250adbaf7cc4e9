"""Predicted-failure conditions: a signal's trend reaching its failure limit within the horizon
(:meth:`~PredictionConditions.on_prediction`), and on a device type without limits the health
index's degradation with the fleet-learned remaining useful life
(:meth:`~PredictionConditions.on_health`). Both count down a time to failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from twin_stream.domain.alerting.merge import RANK, PolicyCore
from twin_stream.domain.alerting.state import _Condition
from twin_stream.domain.alerting.wording import degradation_text, duration, prediction_text
from twin_stream.domain.events import Alert, Prediction, PredictionRecord, Severity

__all__ = ["PredictionConditions"]


class PredictionConditions(PolicyCore):
    """The policy's failure-prediction feeds (:meth:`on_prediction`, :meth:`on_health`)."""

    def on_prediction(
        self, prediction: PredictionRecord | Prediction, seq: int | None = None
    ) -> list[Alert]:
        """Feed one failure prediction (one signal, at a bucket's close); return alert events.

        Each signal has its own condition; its alert is the one of that signal's root cause
        (an open anomaly on the same signal is updated, not doubled).
        """
        self._tick(seq, prediction.ts)
        p, metric, ts = self.params, prediction.metric, prediction.ts
        c = self._condition(f"predicted_failure:{metric}", "predicted_failure")
        ttf = prediction.time_to_failure_h
        # In the quiet period after maintenance a trend spans the repair: it is not counted.
        # On a new device's learning day its daily cycle is not yet known (a chiller's morning
        # load looks like a rise towards the limit): only an imminent failure counts then.
        horizon = p.prediction_critical_h if self._learning_day() else p.prediction_horizon_h
        inside = ttf is not None and ttf <= horizon and not self.quiet
        c.streak, c.calm = (c.streak + 1, 0) if inside else (0, c.calm + 1)
        if inside and c.seq_first is None:
            c.seq_first = seq
        if ttf == 0.0 and not self.quiet:
            c.latched = True  # past the limit: failed
        if not inside and not c.active:
            c.seq_first = None
        if not c.active:
            if c.streak < p.prediction_min_reports:
                return []
            self._activate(c, f"fault:{metric}")
        elif c.calm >= p.prediction_clear_reports and not (c.latched and p.latch_until_maintenance):
            slot = c.slot
            c.reset()
            within = duration(p.prediction_horizon_h)
            reason = f"{metric} no longer heading for its limit within {within}"
            return self._sync(slot, ts, seq, reason)
        if inside and ttf is not None:
            relaxed = (
                c.peak == "critical" and ttf <= p.prediction_critical_h * p.prediction_relax_factor
            )
            c.peak = "critical" if ttf <= p.prediction_critical_h or relaxed else "warning"
            c.prediction = prediction
            self._count_down(c, ttf)
            c.text = prediction_text(self.device_type, prediction)
            c.signature = f"predicted_failure {metric} {duration(c.shown_ttf)}"
            c.details = {"root": metric, "time_to_failure_h": round(ttf, 3)}
        self._settle(c)
        return self._sync(c.slot, ts, seq)

    def on_health(
        self,
        ts: datetime,
        seq: int,
        *,
        stage: int,
        index: float | None,
        trend_per_h: float | None,
        drivers: Sequence[tuple[str, float]],
        rul: PredictionRecord | None = None,
    ) -> list[Alert]:
        """Feed the health index of one reading (its stage, value, trend and the signals that
        moved most against the device's healthy reference) and the fleet-learned remaining
        useful life, if any; return alert events.

        Only a device type without failure limits pages on it (a type with limits keeps its
        trend-to-limit prediction, :meth:`on_prediction`): a sustained degradation of the
        health index is then all there is to know of the device's way to failure.
        """
        if self._has_limits:
            return []
        self._tick(seq, ts)
        p = self.params
        c = self._condition("degradation", "predicted_failure")
        degrading = stage >= 1 and not self.quiet
        if not c.active:
            if not degrading:
                return []
            self._activate(c, "fault:health")
            c.seq_first = seq
        else:
            c.calm = c.calm + 1 if stage == 0 else 0
            if c.calm >= p.degradation_clear_readings:
                slot = c.slot
                c.reset()
                reason = f"health index normal for {p.degradation_clear_readings} readings"
                return self._sync(slot, ts, seq, reason)
        ttf = rul.time_to_failure_h if rul is not None else None
        if degrading:
            imminent = ttf is not None and ttf <= p.prediction_critical_h
            earned: Severity = "critical" if stage >= 2 or imminent else "warning"
            c.peak = max(c.peak, earned, key=RANK.__getitem__)
        if rul is not None and ttf is not None:
            c.prediction = rul
            self._count_down(c, ttf)
        c.text = degradation_text(index, trend_per_h, drivers, c.shown_ttf, rul)
        c.signature = f"degradation {c.peak} {duration(c.shown_ttf)}"
        c.details = {
            "root": "health",
            "health": None if index is None else round(index, 4),
            "drivers": [name for name, _ in drivers[:3]],
        }
        if ttf is not None:
            c.details["time_to_failure_h"] = round(ttf, 3)
        self._settle(c)
        return self._sync(c.slot, ts, seq)

    def _count_down(self, c: _Condition, ttf: float) -> None:
        """Show a new time to failure only when it moved enough (``min_text_shrink``,
        ``min_text_growth``) and reads differently: people see the countdown, not the fit's
        noise."""
        p, shown = self.params, c.shown_ttf
        moved = (
            ttf <= shown * (1 - p.min_text_shrink) or ttf >= shown * (1 + p.min_text_growth)
            if shown is not None
            else True
        )
        if moved and duration(ttf) != duration(shown):
            c.shown_ttf = ttf
