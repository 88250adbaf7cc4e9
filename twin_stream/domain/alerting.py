"""The alert policy: when a score or a prediction becomes an alert, and when the alert ends.

One open alert per device and kind (dedup). An anomaly alert opens when the score stays at or
above ``anomaly_raise`` for ``anomaly_min_readings`` readings in a row and resolves when it stays
below ``anomaly_clear`` (hysteresis) for ``clear_min_readings``; after a resolve, the same kind
waits ``cooldown_readings`` before it may open again. Durations are counted in readings, not
seconds, so the policy behaves the same at any sample rate and any simulated speed.

A predictive alert opens when the predicted time to failure is inside the horizon for
``prediction_min_reports`` bucket reports in a row, and resolves when it leaves the horizon (or
the trend turns) for ``prediction_clear_reports``. Every alert explains itself: the top
signals against the device's own baseline, and for a prediction the trend and the time.

>>> from datetime import datetime, timezone
>>> policy = AlertPolicy("pump-0001", "infusion_pump")
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> top = [Contribution(metric="motor_current", value=0.9, baseline=0.25, deviation=9.0)]
>>> events = [policy.on_score(t, seq, 0.9999, top) for seq in range(3)]
>>> [len(e) for e in events], events[-1][0].state, events[-1][0].severity
([0, 0, 1], 'open', 'warning')
>>> events[-1][0].summary
'anomaly: motor_current 0.9 vs baseline 0.25 (+9.0 sd)'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.events import Alert, AlertKind, Contribution, Prediction, Severity

__all__ = ["AlertPolicy", "AlertPolicyParams", "Contribution"]


def _duration(hours: float | None) -> str:
    """Hours as people read them.

    >>> _duration(30.0), _duration(2.25), _duration(0.2), _duration(None)
    ('30 h', '2.2 h', '12 min', '?')
    """
    if hours is None:
        return "?"
    if hours >= 10:
        return f"{hours:.0f} h"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min"


@dataclass(frozen=True)
class AlertPolicyParams:
    anomaly_raise: float = 0.999
    anomaly_clear: float = 0.99
    anomaly_min_readings: int = 3
    clear_min_readings: int = 10
    cooldown_readings: int = 60
    #: Scores this extreme make an anomaly alert critical rather than a warning (~5.3 sd).
    anomaly_critical: float = 0.9999999
    #: An anomaly counts as heading for failure when a signal has gone this share of the way
    #: from its baseline to its failure limit.
    min_share_to_limit: float = 0.15
    prediction_horizon_h: float = 24.0
    prediction_critical_h: float = 4.0
    prediction_min_reports: int = 2
    prediction_clear_reports: int = 3


@dataclass
class _KindState:
    open: Alert | None = None
    streak: int = 0  # consecutive readings (or reports) meeting the raise condition
    calm: int = 0  # consecutive readings (or reports) meeting the clear condition
    cooldown: int = 0
    seq_first: int | None = None


@dataclass
class AlertPolicy:
    """The alert state of one device."""

    device_id: str
    device_type: str
    params: AlertPolicyParams = field(default_factory=AlertPolicyParams)
    kinds: dict[str, _KindState] = field(default_factory=dict)

    def open_alerts(self) -> list[Alert]:
        return [s.open for s in self.kinds.values() if s.open is not None]

    def _state(self, kind: AlertKind) -> _KindState:
        return self.kinds.setdefault(kind, _KindState())

    def _raise(
        self,
        kind: AlertKind,
        ts: datetime,
        severity: Severity,
        summary: str,
        seq: int | None,
        **extra: Any,
    ) -> Alert:
        state = self._state(kind)
        alert = Alert(
            alert_id=uuid.uuid4().hex,
            device_id=self.device_id,
            device_type=self.device_type,
            kind=kind,
            severity=severity,
            state="open",
            opened_at=ts,
            ts=ts,
            summary=summary,
            seq_first=state.seq_first if state.seq_first is not None else seq,
            seq_last=seq,
            detector_version=DETECTOR_VERSION,
            **extra,
        )
        state.open = alert
        return alert

    def _resolve(self, kind: AlertKind, ts: datetime, seq: int | None) -> Alert:
        state = self._state(kind)
        assert state.open is not None
        resolved = state.open.model_copy(
            update={"state": "resolved", "resolved_at": ts, "ts": ts, "seq_last": seq}
        )
        state.open, state.streak, state.calm, state.seq_first = None, 0, 0, None
        state.cooldown = self.params.cooldown_readings
        return resolved

    def on_score(
        self, ts: datetime, seq: int, score: float, top: list[Contribution]
    ) -> list[Alert]:
        """Feed one reading's anomaly score; return the alert events it causes."""
        p, state = self.params, self._state("anomaly")
        if state.cooldown:
            state.cooldown -= 1
        if state.open is None:
            if score >= p.anomaly_raise:
                state.streak += 1
                if state.seq_first is None:
                    state.seq_first = seq
            else:
                state.streak, state.seq_first = 0, None
            if state.streak >= p.anomaly_min_readings and not state.cooldown:
                # Unusual is not the same as failing: an anomaly notifies people (warning or
                # critical) only when a signal moves towards its failure limit. A pump pausing
                # or a battery charging is unusual for a moment but harmless: that is "info".
                severity: Severity = "info"
                if any(self._towards_failure(c) for c in top[:3]):
                    severity = "critical" if score >= p.anomaly_critical else "warning"
                summary = "anomaly: " + ", ".join(
                    f"{c.metric} {c.value:.4g} vs baseline {c.baseline:.4g} ({c.deviation:+.1f} sd)"
                    for c in top[:3]
                )
                return [self._raise("anomaly", ts, severity, summary, seq, contributions=top[:3])]
            return []
        state.calm = state.calm + 1 if score < p.anomaly_clear else 0
        if state.calm >= p.clear_min_readings:
            return [self._resolve("anomaly", ts, seq)]
        return []

    def _towards_failure(self, c: Contribution) -> bool:
        spec = METRICS_BY_TYPE.get(self.device_type, {}).get(c.metric)
        if spec is None or abs(c.deviation) < 3.0:
            return False
        limit = spec.failure_above if spec.failure_above is not None else spec.failure_below
        if limit is None or limit == c.baseline:
            return False
        # Towards the limit, and by a real part of the way (a battery at 99 % instead of 100 %
        # is many standard deviations off, but nowhere near empty).
        return (c.value - c.baseline) / (limit - c.baseline) >= self.params.min_share_to_limit

    def on_prediction(self, prediction: Prediction, seq: int | None = None) -> list[Alert]:
        """Feed one failure prediction; return the alert events it causes.

        Each signal keeps its own streak; the device has at most one open predictive alert,
        which the signal that raised it resolves.
        """
        p = self.params
        kind: AlertKind = "predicted_failure"
        state = self._state(kind)
        signal = self.kinds.setdefault(f"{kind}:{prediction.metric}", _KindState())
        ttf = prediction.time_to_failure_h
        inside = ttf is not None and ttf <= p.prediction_horizon_h
        signal.streak = signal.streak + 1 if inside else 0
        signal.calm = signal.calm + 1 if not inside else 0
        if state.open is None:
            if signal.streak >= p.prediction_min_reports and ttf is not None:
                severity: Severity = "critical" if ttf <= p.prediction_critical_h else "warning"
                band = ""
                if prediction.lower_h is not None:
                    upper = prediction.upper_h
                    band = f" ({_duration(prediction.lower_h)} to {_duration(upper)})"
                summary = (
                    f"predicted failure: {prediction.metric} {prediction.value:.4g} trending "
                    f"{prediction.trend_per_h:+.3g}/h towards {prediction.limit:g}; "
                    f"limit in {_duration(ttf)}{band}"
                )
                return [
                    self._raise(kind, prediction.ts, severity, summary, seq, prediction=prediction)
                ]
            return []
        raised_by = state.open.prediction.metric if state.open.prediction else None
        if raised_by == prediction.metric and signal.calm >= p.prediction_clear_reports:
            return [self._resolve(kind, prediction.ts, seq)]
        return []

    def on_connectivity(self, ts: datetime, online: bool) -> list[Alert]:
        """A device going offline opens an alert; coming back resolves it."""
        state = self._state("offline")
        if not online and state.open is None:
            return [self._raise("offline", ts, "warning", "device offline", None)]
        if online and state.open is not None:
            return [self._resolve("offline", ts, None)]
        return []
