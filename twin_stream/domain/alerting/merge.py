"""One device's alert state, and how the active conditions of one slot merge into its alert's
events (``open``, ``updated``, ``resolved``): the core every kind of condition feeds.

A slot is one root cause: ``fault:<signal>`` (an anomaly rooted in the signal and the signal's
predicted failure), ``fault:health`` (a degradation), ``data_quality:<signal>:<issue>`` and
``offline``. The alert of a slot shows its worst condition's severity and all their texts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from twin_stream.domain import alert_lifecycle as lifecycle
from twin_stream.domain.alerting.params import POLICY_VERSION, AlertPolicyParams
from twin_stream.domain.alerting.state import _Condition, _Slot
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.events import (
    PAGING_SEVERITIES,
    Alert,
    AlertKind,
    Contribution,
    ContributionLike,
    Prediction,
    PredictionRecord,
)

__all__ = ["RANK", "PolicyCore"]

#: Alert ids are uuid5 in this namespace of (device, kind, slot, opening seq and time): the same
#: condition replayed from the same data gets the same id (idempotent sinks, reproducible runs).
_ID_NAMESPACE: Final = uuid.UUID("5f0c6c4e-3a57-4c1b-9a59-7e0d1c2b7a10")

#: Severities in order (``max(..., key=RANK.__getitem__)`` is the worse of two).
RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "critical": 2}

#: Device types with at least one failure limit (asked at every prediction and anomaly).
_TYPES_WITH_LIMITS: Final = frozenset(
    device_type
    for device_type, specs in METRICS_BY_TYPE.items()
    if any(spec.degrades for spec in specs.values())
)


def _as_model(prediction: PredictionRecord | Prediction | None) -> Prediction | None:
    """The prediction an alert carries, as its schema's model (the detector makes records)."""
    return prediction.to_model() if isinstance(prediction, PredictionRecord) else prediction


def _contribution(x: ContributionLike) -> Contribution:
    """The schema's contribution, built when an alert carries it (rarely, unlike scores)."""
    if isinstance(x, Contribution):
        return x
    return Contribution(metric=x.metric, value=x.value, baseline=x.baseline, deviation=x.deviation)


@dataclass
class PolicyCore:
    """The alert state of one device and what every kind of condition shares: counting
    readings, activating conditions, settling what they show, and merging them into events.
    :class:`~twin_stream.domain.alerting.AlertPolicy` is this with the feeds of each kind."""

    device_id: str
    device_type: str
    params: AlertPolicyParams = field(default_factory=AlertPolicyParams)
    version: str = POLICY_VERSION
    conditions: dict[str, _Condition] = field(default_factory=dict)
    slots: dict[str, _Slot] = field(default_factory=dict)
    quiet: int = 0  # readings left in the quiet period after maintenance
    info_wait: int = 0  # readings before the next info alert may open
    last_seq: int | None = None
    activations: int = 0
    #: the device clock's first and latest reading (the first day is a learning day)
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    #: Resolved alerts (their last event), at most
    #: :data:`~twin_stream.domain.alert_lifecycle.HISTORY_PER_DEVICE`, compressed
    #: (:func:`~twin_stream.domain.alert_lifecycle.remember`; read with :meth:`history`).
    resolved: bytes = b""
    #: Per open alert, the last paging event the re-notification clock saw (revision, time).
    paged: dict[str, tuple[int, datetime]] = field(default_factory=dict)

    # -- shared by the feeds ---------------------------------------------------------------------

    def _tick(self, seq: int | None, ts: datetime | None = None) -> None:
        """Count a reading once, whichever feed sees it first."""
        if ts is not None:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        if seq is None or seq == self.last_seq:
            return
        self.last_seq = seq
        if self.quiet > 0:
            self.quiet -= 1
        if self.info_wait > 0:
            self.info_wait -= 1

    def _condition(self, key: str, kind: AlertKind) -> _Condition:
        # Not ``setdefault(key, _Condition(kind))``: that builds a condition on every call.
        c = self.conditions.get(key)
        if c is None:
            c = self.conditions[key] = _Condition(kind)
        return c

    def _activate(self, c: _Condition, slot: str) -> None:
        self.activations += 1
        c.active, c.slot, c.order, c.calm = True, slot, self.activations, 0

    def _resume(self, ts: datetime, seq: int | None) -> list[Alert]:
        """Telemetry resolves an offline alert (not a reading older than the alert)."""
        c = self.conditions.get("offline")
        if c is None or not c.active:
            return []
        slot = self.slots.get("offline")
        if slot is not None and slot.alert is not None and ts < slot.alert.opened_at:
            return []
        c.reset()
        return self._sync("offline", ts, seq, "telemetry resumed")

    @property
    def _has_limits(self) -> bool:
        return self.device_type in _TYPES_WITH_LIMITS

    def _learning_day(self) -> bool:
        """A fleet device's first day (of its own clock). Devices of a type the platform does
        not know (a replayed history, a benchmark) have no learning day: nothing is known of
        their days, and their alerts rest on the score alone."""
        if not self._has_limits:
            return False
        if self.first_ts is None or self.last_ts is None:
            return True
        return (self.last_ts - self.first_ts).total_seconds() < self.params.learning_h * 3600

    def _settle(self, c: _Condition) -> None:
        """What a device-fault condition shows now: its earned severity, unless suppressed."""
        root = c.slot.removeprefix("fault:")
        bad = sorted(
            str(q.details.get("issue"))
            for q in self.conditions.values()
            if q.kind == "data_quality" and q.active and q.details.get("metric") == root
        )
        if c.quiet:
            c.severity, c.note = "info", "after maintenance: learning the new normal"
        elif bad:
            c.severity, c.note = "info", f"{root} data {'/'.join(bad)}: not paged"
        else:
            c.severity, c.note = c.peak, ""

    def _alert_id(self, kind: str, slot: str, seq: int | None, ts: datetime) -> str:
        key = f"{self.device_id}|{kind}|{slot}|{seq}|{ts.isoformat()}"
        return uuid.uuid5(_ID_NAMESPACE, key).hex

    def _sync(self, key: str, ts: datetime, seq: int | None, reason: str = "") -> list[Alert]:
        """Bring the alert of one slot in line with its active conditions; return the event
        that took (open, updated, resolved), if any."""
        conds = sorted(
            (c for c in self.conditions.values() if c.active and c.slot == key),
            key=lambda c: c.order,
        )
        slot = self.slots.get(key)
        if not conds:
            if slot is None:
                return []
            del self.slots[key]
            if slot.alert is None:
                return []
            last = slot.alert
            resolved = last.model_copy(
                update={
                    "state": "resolved",
                    "resolved_at": ts,
                    "ts": max(ts, last.ts),  # after its acknowledgement, if that was later
                    "seq_last": seq if seq is not None else last.seq_last,
                    "revision": last.revision + 1,
                    "summary": f"resolved ({reason}): {last.summary}",
                }
            )
            self.paged.pop(last.alert_id, None)
            self.resolved = lifecycle.remember(self.resolved, resolved)
            return [resolved]
        severity = max((c.severity for c in conds), key=RANK.__getitem__)
        if slot is None:
            slot = self.slots[key] = _Slot()
        kinds = slot.kinds + [c.kind for c in conds if c.kind not in slot.kinds]
        signature = (severity, *kinds, *(f"{c.signature} {c.note}" for c in conds))
        summary = " | ".join(c.text + (f" [{c.note}]" if c.note else "") for c in conds)
        anomaly = next((c for c in conds if c.kind == "anomaly"), None)
        predicted = next((c for c in conds if c.prediction is not None), None)
        details: dict[str, Any] = {"kinds": list(kinds)}
        for c in reversed(conds):
            details.update(c.details)
        if any(c.note for c in conds):
            details["not_paged"] = "; ".join(c.note for c in conds if c.note)
        fields: dict[str, Any] = {
            "severity": severity,
            "ts": ts,
            "summary": summary,
            "contributions": [_contribution(x) for x in anomaly.contributions] if anomaly else [],
            "prediction": _as_model(predicted.prediction) if predicted else None,
            "details": details,
        }
        if slot.alert is None:
            if severity not in PAGING_SEVERITIES:
                if self.info_wait:
                    return []  # rate-limited: the condition stays, its alert waits
                if any(
                    c.kind == "anomaly"
                    and (c.above < self.params.info_min_readings or self._learning_day())
                    for c in conds
                ):
                    return []  # not (yet) a finding: it must last, past the learning day
                self.info_wait = self.params.info_min_gap_readings
            firsts = [c.seq_first for c in conds if c.seq_first is not None]
            seq_first = min(firsts) if firsts else seq
            kind = conds[0].kind
            alert = Alert(
                alert_id=self._alert_id(kind, key, seq_first, ts),
                device_id=self.device_id,
                device_type=self.device_type,
                kind=kind,
                state="open",
                opened_at=ts,
                seq_first=seq_first,
                seq_last=seq,
                detector_version=DETECTOR_VERSION,
                **fields,
            )
        elif signature == slot.signature:
            return []
        else:
            last = slot.alert
            alert = last.model_copy(
                update={
                    **fields,
                    **lifecycle.escalation(last, severity),  # worse than acknowledged: pages
                    "ts": max(ts, last.ts),
                    "state": "updated",
                    "revision": last.revision + 1,
                    "seq_last": seq if seq is not None else last.seq_last,
                }
            )
        slot.alert, slot.kinds, slot.signature = alert, kinds, signature
        return [alert]
