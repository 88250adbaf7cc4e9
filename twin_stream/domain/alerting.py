"""The alert policy (v2): when scores, predictions, data-quality findings and connectivity become
alerts, how an alert changes while it is open, and when it ends.

Conditions and alerts. The policy tracks *conditions* (an anomaly, a predicted failure of one
signal, a data-quality finding of one signal, the device being offline) and turns them into
*alerts*. Conditions of one root cause on one device share one alert: an anomaly whose top
contribution is signal S and a predicted failure of S are one alert (``details["kinds"]`` lists
both), not two pages. Data-quality alerts are kept apart: one per (signal, issue), never merged
with a device fault. Every alert's life is a series of events with one ``alert_id``:
``open`` (revision 0), ``updated`` (revision 1, 2, ...: its severity or its text changed
meaningfully) and ``resolved``; people acknowledge and shelve open alerts, and unacknowledged
critical ones are re-notified (:mod:`~twin_stream.domain.alert_lifecycle`: the policy keeps
their state and a bounded history of resolved alerts). Only ``warning`` and ``critical`` page
a person (:attr:`Alert.pages <twin_stream.domain.events.Alert.pages>`); ``info`` is shown,
never announced, and rate-limited per device.

Durations are counted in readings (or prediction reports), not seconds, so the policy behaves
the same at any sample rate and any simulated speed; texts use the device's own clock (the
reading's time) and the units of :data:`~twin_stream.domain.devices.METRICS_BY_TYPE`.

An alert's whole life, on a pump whose motor wears out:

>>> from datetime import datetime, timedelta, timezone
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> policy = AlertPolicy("pump-0001", "infusion_pump")
>>> _ = policy.on_telemetry(t - timedelta(days=2), 0)  # watched for two days already
>>> worn = [Contribution(metric="motor_current", value=0.42, baseline=0.25, deviation=9.0)]
>>> events = [policy.on_score(t + timedelta(seconds=s), s, 0.6, worn) for s in range(1, 4)]
>>> [len(e) for e in events]
[0, 0, 1]
>>> a = events[-1][0]
>>> a.state, a.severity, a.pages, a.summary
('open', 'warning', True, 'anomaly: motor_current 0.42 A vs baseline 0.25 A (+9.0 sd)')
>>> def report(s, ttf):
...     return PredictionRecord("pump-0001", "infusion_pump", "motor_current",
...         t + timedelta(seconds=s), 0.42, 0.8, 0.02, ttf, None, None, "d")
>>> policy.on_prediction(report(3, 19.0), 3)
[]
>>> u = policy.on_prediction(report(4, 19.0), 4)[0]
>>> u.alert_id == a.alert_id, u.state, u.revision, u.severity, u.details["kinds"]
(True, 'updated', 1, 'warning', ['anomaly', 'predicted_failure'])
>>> u.summary.split(" | ")[1]
'predicted failure: motor_current 0.42 A trending +0.02 A/h; limit 0.8 A in 19 h'
>>> c = policy.on_prediction(report(5, 3.5), 5)[0]
>>> c.revision, c.severity, "limit 0.8 A in 3.5 h" in c.summary
(2, 'critical', True)
>>> policy.on_prediction(report(6, 3.4), 6)  # the same "3.5 h" shown: no new event
[]
>>> r = policy.on_maintenance(t + timedelta(hours=1))[0]
>>> r.state, r.revision, r.summary.startswith("resolved (maintenance done")
('resolved', 3, True)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from twin_stream.domain import alert_lifecycle as lifecycle
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.detection.quality import QualityFinding, QualityIssue
from twin_stream.domain.detection.state import RestoresByAttribute, restore_attributes
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.events import (
    PAGING_SEVERITIES,
    Alert,
    AlertKind,
    Contribution,
    ContributionLike,
    Prediction,
    PredictionRecord,
    Severity,
)

__all__ = [
    "LIFE_SUPPORT_TYPES",
    "POLICY_VERSION",
    "SAFETY_SIGNALS",
    "AlertPolicy",
    "AlertPolicyParams",
    "Contribution",
    "pages",
]

#: The version of the policy's pickled state and semantics. A monitor restored from a pickle
#: of another version is refused (its counters would mean something else).
POLICY_VERSION: Final = "ts-policy/2"
#: What :meth:`AlertPolicy.__setstate__` records for a pickle made before versions existed.
_UNVERSIONED: Final = "ts-policy/1"

#: Alert ids are uuid5 in this namespace of (device, kind, slot, opening seq and time): the same
#: condition replayed from the same data gets the same id (idempotent sinks, reproducible runs).
_ID_NAMESPACE: Final = uuid.UUID("5f0c6c4e-3a57-4c1b-9a59-7e0d1c2b7a10")

_RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "critical": 2}

#: Device types that keep a patient alive: any loss of their measurements (stuck, dropouts,
#: pinned) is a warning, as IEC 60601-1-8 makes a technical alarm on life-supporting equipment
#: at least medium priority. A ventilator that cannot see its own tidal volume is not safe.
LIFE_SUPPORT_TYPES: Final = frozenset({"ventilator"})
#: Per device type, the signals that therapy or the device's safety interlocks depend on: a
#: stuck, missing or pinned value of one of these hides a hazard (a stuck flow sensor hides a
#: free flow or an occlusion), so it is a ``warning``. Bad data on other signals (and clock
#: skew anywhere: the values are still right, only their times are off) is ``info``.
SAFETY_SIGNALS: Final[dict[str, frozenset[str]]] = {
    "infusion_pump": frozenset({"flow_rate", "line_pressure"}),
    "dialysis_machine": frozenset({"blood_pump_speed", "conductivity", "dialysate_temp", "tmp"}),
    "mri_chiller": frozenset({"helium_level", "coldhead_temp"}),
    "patient_monitor": frozenset({"signal_quality"}),
}


#: Device types with at least one failure limit (asked at every prediction and anomaly).
_TYPES_WITH_LIMITS: Final = frozenset(
    device_type
    for device_type, specs in METRICS_BY_TYPE.items()
    if any(spec.degrades for spec in specs.values())
)


def pages(alert: Alert) -> bool:
    """Whether an alert event notifies a person: only open ``warning`` and ``critical``.

    >>> sorted(PAGING_SEVERITIES)
    ['critical', 'warning']
    """
    return alert.pages


def _as_model(prediction: PredictionRecord | Prediction | None) -> Prediction | None:
    """The prediction an alert carries, as its schema's model (the detector makes records)."""
    return prediction.to_model() if isinstance(prediction, PredictionRecord) else prediction


def _duration(hours: float | None) -> str:
    """Hours as people read them, coarse enough that the text changes only when it matters:
    whole hours from 10 h, half hours from 1 h, five minutes below.

    >>> _duration(30.0), _duration(19.4), _duration(3.4), _duration(0.2), _duration(None)
    ('30 h', '19 h', '3.5 h', '10 min', '?')
    """
    if hours is None:
        return "?"
    halves = round(hours * 2) / 2
    if halves >= 10:
        return f"{hours:.0f} h"
    if halves >= 1:
        return f"{halves:.1f} h"
    minutes = hours * 60
    return "< 5 min" if minutes < 2.5 else f"{5 * round(minutes / 5):.0f} min"


@dataclass(frozen=True)
class AlertPolicyParams(RestoresByAttribute):
    """Every threshold of the policy, with where it comes from."""

    #: The anomaly score is NAB's log-scaled anomaly likelihood (Lavin & Ahmad 2015):
    #: log(1.0000000001 - L) / log(1 - 0.99999). 0.5 <=> likelihood 0.9968, i.e. about one
    #: reading in 300 of normal data; with ``anomaly_min_readings`` in a row, far rarer.
    anomaly_raise: float = 0.5
    #: Hysteresis: an open anomaly ends only below 0.3 (likelihood ~0.97), so a score that
    #: wavers around the raise level does not open and close the alert again and again.
    anomaly_clear: float = 0.3
    #: Three readings in a row: a single spike (a knock, a bubble) is not a condition.
    anomaly_min_readings: int = 3
    #: Ten calm readings in a row before an anomaly resolves (a pause in a fault is not a cure).
    clear_min_readings: int = 10
    #: After an anomaly resolves, the next may open only 60 readings later: NAB scores one
    #: detection per anomaly window, and the same excursion seen again is not news.
    cooldown_readings: int = 60
    #: Score 0.9 <=> likelihood 0.99997: with a signal heading for its failure limit, so far
    #: out that it calls for immediate response (IEC 60601-1-8 high priority).
    anomaly_critical: float = 0.9
    #: An anomaly counts as heading for failure when a signal is >= 4 sd off its baseline (the
    #: detector's protection limit: beyond it a reading is not learned as normal) and has gone
    #: a quarter of the way from its baseline to its failure limit (a battery at 86 % instead
    #: of 100 %, a monitor unplugged for a transport, is many sd off but nowhere near empty;
    #: 0.15 paged for that in the simulated fleet).
    min_share_to_limit: float = 0.25
    min_deviation_sd: float = 4.0
    #: Devices of a type without failure limits (replayed data, SKAB, unknown types): an anomaly
    #: sustained this many readings in a row at or above ``anomaly_raise`` pages (warning).
    #: Ten readings is three times the minimum duration: a regime change, not a transient.
    unlimited_sustain_readings: int = 10
    #: Predicted failures inside 24 h alert: one working day's notice for a maintenance team.
    prediction_horizon_h: float = 24.0
    #: Inside 4 h a predicted failure is critical: less than a shift to act (high priority).
    prediction_critical_h: float = 4.0
    #: A critical prediction drops back to warning only beyond 1.5x the critical time (6 h), so
    #: a noisy trend around 4 h does not flap between the two.
    prediction_relax_factor: float = 1.5
    #: Two reports in a row inside the horizon open a predicted failure; three outside end it.
    prediction_min_reports: int = 2
    prediction_clear_reports: int = 3
    #: A signal past its failure limit latches its alert (IEC 60601-1-8's latching alarm
    #: signal): the device has failed, and the alert stays open until maintenance is done.
    #: Without it a failed device's alert resolved and opened again with every swing of its
    #: signal around the limit (a failed battery recharging and draining again).
    latch_until_maintenance: bool = True
    #: An open alert's time to failure is updated when its shown value changes and it has
    #: shrunk by >= 20 % (19 h -> 15 h yes, 19 h -> 17 h no; about 15 updates from 24 h down
    #: to minutes) or grown by >= 50 %: people see the countdown, not the noise of the fit
    #: (a trend wavering between 2.0 h and 2.5 h would otherwise update at every report).
    min_text_shrink: float = 0.2
    min_text_growth: float = 0.5
    #: ``info`` findings are for the record (the device's history in Grafana), not for people
    #: now: at most one new one per device per 1,440 readings (a day at one a minute), only an
    #: anomaly that lasted 10 readings (a blip is not a finding), and none on a new device's
    #: learning day (what is unusual then is the day it is learning). With 100 readings, no
    #: minimum duration and no learning day the simulated fleet recorded ~1.5 info alerts per
    #: device-day, most of them pumps going on battery for a transport, ventilators leaving
    #: standby and chillers' first mornings; at 720 readings, ~0.6.
    info_min_gap_readings: int = 1440
    info_min_readings: int = 10
    #: A data-quality alert resolves after its finding has been absent 10 readings in a row.
    quality_clear_readings: int = 10
    #: After maintenance, anomalies and predicted failures do not page for 300 readings: the
    #: detector's warm-up (150 readings) plus 1.5x its baseline memory (100 readings), the time
    #: it takes to learn the repaired device's new normal.
    maintenance_quiet_readings: int = 300
    #: A new device's anomalies do not page during its first day (of its own clock): the
    #: seasonal baselines have not yet seen its daily cycle once (an MRI chiller's morning
    #: load is new on day one, normal from day two). Predicted failures page from the start,
    #: but only imminent ones (within ``prediction_critical_h``) on that day.
    learning_h: float = 24.0
    #: ... except a signal already half-way from its baseline to its failure limit: an
    #: emergency (an occlusion) pages on day one too.
    learning_min_share: float = 0.5
    #: Degradation (devices of a type without failure limits: a replayed history, a new type):
    #: the health index's own stage (:mod:`~twin_stream.domain.detection.health`) pages,
    #: warning at stage 1 and critical at stage 2 or when the fleet-learned remaining useful
    #: life is inside ``prediction_critical_h``. A degradation rarely heals: it resolves only
    #: after its stage has been 0 for this many readings in a row (or on maintenance).
    degradation_clear_readings: int = 100


@dataclass
class _Condition(RestoresByAttribute):
    """One thing the policy watches: an anomaly, a signal's predicted failure, a data-quality
    finding, the device offline. Active conditions feed the alert of their ``slot``."""

    kind: AlertKind
    slot: str = ""
    active: bool = False
    order: int = 0  # activation order: the first active condition names the alert's kind
    streak: int = 0  # consecutive readings (or reports) meeting the raise condition
    calm: int = 0  # consecutive readings (or reports) meeting the clear condition
    above: int = 0  # consecutive readings at or above the raise level (sustained anomalies)
    cooldown: int = 0
    seq_first: int | None = None
    peak: Severity = "info"  # the severity the condition has earned
    severity: Severity = "info"  # what it shows now (info while suppressed)
    note: str = ""  # why it does not page, if it does not
    quiet: bool = False  # began in the quiet period after maintenance
    latched: bool = False  # its signal went past the failure limit: the device failed
    text: str = ""
    signature: str = ""  # the coarse content of ``text``: a change of it updates the alert
    contributions: list[ContributionLike] = field(default_factory=list)
    prediction: PredictionRecord | Prediction | None = None
    shown_ttf: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def reset(self, cooldown: int = 0) -> None:
        self.active, self.streak, self.calm, self.above = False, 0, 0, 0
        self.seq_first, self.peak, self.severity, self.note = None, "info", "info", ""
        self.quiet, self.shown_ttf, self.cooldown = False, None, cooldown
        self.latched = False


def _contribution(x: ContributionLike) -> Contribution:
    """The schema's contribution, built when an alert carries it (rarely, unlike scores)."""
    if isinstance(x, Contribution):
        return x
    return Contribution(metric=x.metric, value=x.value, baseline=x.baseline, deviation=x.deviation)


@dataclass
class _Slot(RestoresByAttribute):
    """One alert: the last event emitted (None while an info alert waits for its turn)."""

    alert: Alert | None = None
    kinds: list[str] = field(default_factory=list)
    signature: tuple[str, ...] = ()


@dataclass
class AlertPolicy:
    """The alert state of one device (see the module docstring).

    ``version`` is saved with the pickle: ``AlertPolicy.version`` is the class's,
    ``policy.version`` the one the state was made with (``ts-policy/1`` for a pickle older
    than versions).
    """

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

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A pickle from before the alert lifecycle (issue 13) has no history and no paging
        # marks, and its alerts lack the lifecycle's fields (pydantic restores only the saved
        # ones): they get their defaults. The counters mean what they meant: same version.
        restore_attributes(self, {"version": _UNVERSIONED, "resolved": b"", "paged": {}, **state})
        for slot in self.slots.values():
            if slot.alert is not None and "ack" not in slot.alert.__dict__:
                slot.alert = Alert.model_validate(dict(slot.alert.__dict__))

    # -- what is open ---------------------------------------------------------------------------

    def open_alerts(self) -> list[Alert]:
        """The latest event of every open alert."""
        return [s.alert for s in self.slots.values() if s.alert is not None]

    def history(self) -> list[Alert]:
        """The last event of the resolved alerts kept, newest first."""
        return lifecycle.recall(self.resolved)

    def alerts(self) -> list[Alert]:
        """The latest event of every open alert, then of the resolved ones kept (history)."""
        return self.open_alerts() + self.history()

    def find(self, alert_id: str) -> Alert | None:
        """The latest event of one alert, open or in the history; None if unknown here."""
        return next((a for a in self.alerts() if a.alert_id == alert_id), None)

    # -- people's part: acknowledge, shelve, return, re-notify (domain.alert_lifecycle) ---------

    def act(
        self, action: lifecycle.AlertAction, *, max_shelve_minutes: float
    ) -> Alert | lifecycle.Refused:
        """Apply a person's action to one of this device's alerts: its next event (kept as the
        alert's latest), or why not (unknown, resolved, acknowledged already, too long)."""
        slot = next(
            (s for s in self.slots.values() if s.alert and s.alert.alert_id == action.alert_id),
            None,
        )
        if slot is None or slot.alert is None:
            if any(a.alert_id == action.alert_id for a in self.history()):
                return lifecycle.Refused("conflict", f"alert {action.alert_id} is resolved")
            return lifecycle.Refused("unknown", f"no alert {action.alert_id} on {self.device_id}")
        event = lifecycle.apply(slot.alert, action, max_shelve_minutes=max_shelve_minutes)
        if isinstance(event, Alert):
            slot.alert = event
        return event

    def on_clock(self, now: datetime, renotify_every: timedelta | None) -> list[Alert]:
        """The wall clock's turn (``now``): shelved alerts whose time is over return, and
        critical alerts that page unacknowledged are re-notified every ``renotify_every``."""
        events = []
        for slot in self.slots.values():
            if slot.alert is None:
                continue
            alert_id = slot.alert.alert_id
            event, mark = lifecycle.tick(slot.alert, self.paged.get(alert_id), now, renotify_every)
            if mark is not None:
                self.paged[alert_id] = mark
            if event is not None:
                slot.alert = event
                events.append(event)
        return events

    # -- feeds ----------------------------------------------------------------------------------

    def on_telemetry(self, ts: datetime, seq: int) -> list[Alert]:
        """Every reading, warming up or not: counts readings and ends an offline alert (the
        device is evidently sending, birth message or not)."""
        self._tick(seq, ts)
        return self._resume(ts, seq)

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
        c.peak = max(c.peak, self._anomaly_severity(score, c), key=_RANK.__getitem__)
        c.text = "anomaly: " + ", ".join(
            f"{x.metric} {self._q(x.metric, x.value)} vs baseline "
            f"{self._q(x.metric, x.baseline)} ({x.deviation:+.1f} sd)"
            for x in c.contributions
        )
        # The top signals of a noisy score change reading by reading: that alone is no news.
        # An anomaly's alert is updated when its severity (or what it is joined with) changes.
        c.signature = "anomaly"
        self._settle(c)
        c.details = {"root": c.slot.removeprefix("fault:"), "score": round(score, 4)}
        return events + self._sync(c.slot, ts, seq)

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
            within = _duration(p.prediction_horizon_h)
            reason = f"{metric} no longer heading for its limit within {within}"
            return self._sync(slot, ts, seq, reason)
        if inside and ttf is not None:
            relaxed = (
                c.peak == "critical" and ttf <= p.prediction_critical_h * p.prediction_relax_factor
            )
            c.peak = "critical" if ttf <= p.prediction_critical_h or relaxed else "warning"
            c.prediction = prediction
            self._count_down(c, ttf)
            c.text = self._prediction_text(prediction)
            c.signature = f"predicted_failure {metric} {_duration(c.shown_ttf)}"
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
            c.peak = max(c.peak, earned, key=_RANK.__getitem__)
        if rul is not None and ttf is not None:
            c.prediction = rul
            self._count_down(c, ttf)
        moved_most = ", ".join(f"{name} {z:+.1f} sd" for name, z in drivers[:3])
        trend = f" trending {trend_per_h:+.3g}/h" if trend_per_h is not None else ""
        c.text = (
            f"degradation: health index {index:.3g}{trend} against the healthy reference"
            if index is not None
            else "degradation: health index away from the healthy reference"
        )
        if moved_most:
            c.text += f"; moved most: {moved_most}"
        if c.shown_ttf is not None and rul is not None:
            band = ""
            if rul.lower_h is not None:
                band = f" ({_duration(rul.lower_h)} to {_duration(rul.upper_h)})"
            c.text += f"; remaining useful life {_duration(c.shown_ttf)}{band} (fleet-learned)"
        c.signature = f"degradation {c.peak} {_duration(c.shown_ttf)}"
        c.details = {
            "root": "health",
            "health": None if index is None else round(index, 4),
            "drivers": [name for name, _ in drivers[:3]],
        }
        if ttf is not None:
            c.details["time_to_failure_h"] = round(ttf, 3)
        self._settle(c)
        return self._sync(c.slot, ts, seq)

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

    def on_connectivity(self, ts: datetime, online: bool) -> list[Alert]:
        """A device going offline (a will, a missed heartbeat) opens an alert; coming back
        (a birth message, or any telemetry: :meth:`on_telemetry`) resolves it."""
        c = self._condition("offline", "offline")
        if not online and not c.active:
            self._activate(c, "offline")
            c.seq_first = self.last_seq
            # A technical alarm of lost monitoring: medium priority (IEC 60601-1-8).
            c.peak = c.severity = "warning"
            c.text, c.signature = "device offline", "offline"
            return self._sync("offline", ts, self.last_seq)
        if online and c.active:
            c.reset()
            return self._sync("offline", ts, self.last_seq, "device back online")
        return []

    def on_maintenance(self, ts: datetime) -> list[Alert]:
        """Maintenance was done (``maintenance_done``, a part replaced): resolve the device's
        anomaly and predicted-failure alerts, and page nobody about its new normal for
        ``maintenance_quiet_readings`` readings."""
        self.quiet = self.params.maintenance_quiet_readings
        events: list[Alert] = []
        for c in self.conditions.values():
            if c.kind in ("anomaly", "predicted_failure"):
                c.reset()
        for key in [k for k in self.slots if k.startswith("fault:")]:
            events += self._sync(key, ts, self.last_seq, f"maintenance done at {ts.isoformat()}")
        return events

    # -- internals ------------------------------------------------------------------------------

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

    def _learning_day(self) -> bool:
        """A fleet device's first day (of its own clock). Devices of a type the platform does
        not know (a replayed history, a benchmark) have no learning day: nothing is known of
        their days, and their alerts rest on the score alone."""
        if not self._has_limits:
            return False
        if self.first_ts is None or self.last_ts is None:
            return True
        return (self.last_ts - self.first_ts).total_seconds() < self.params.learning_h * 3600

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
        if moved and _duration(ttf) != _duration(shown):
            c.shown_ttf = ttf

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

    def _quality_severity(self, metric: str, issue: QualityIssue) -> Severity:
        if issue == "clock_skew":
            return "info"
        if self.device_type in LIFE_SUPPORT_TYPES:
            return "warning"
        return "warning" if metric in SAFETY_SIGNALS.get(self.device_type, ()) else "info"

    def _q(self, metric: str, value: float) -> str:
        """A value with its unit (none for dimensionless or unknown signals)."""
        spec = METRICS_BY_TYPE.get(self.device_type, {}).get(metric)
        unit = spec.unit if spec is not None and spec.unit != "1" else ""
        return f"{value:.4g} {unit}" if unit else f"{value:.4g}"

    def _prediction_text(self, pr: PredictionRecord | Prediction) -> str:
        spec = METRICS_BY_TYPE.get(self.device_type, {}).get(pr.metric)
        unit = f" {spec.unit}" if spec is not None and spec.unit != "1" else ""
        band = ""
        if pr.lower_h is not None:
            band = f" ({_duration(pr.lower_h)} to {_duration(pr.upper_h)})"
        return (
            f"predicted failure: {pr.metric} {self._q(pr.metric, pr.value)} trending "
            f"{pr.trend_per_h:+.3g}{unit}/h; limit {self._q(pr.metric, pr.limit)} in "
            f"{_duration(pr.time_to_failure_h)}{band}"
        )

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
        severity = max((c.severity for c in conds), key=_RANK.__getitem__)
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
