"""The alert policy's parameters: every threshold with where it comes from, the version of its
state, and which device types and signals make bad data a warning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twin_stream.domain.detection.state import RestoresByAttribute

__all__ = ["LIFE_SUPPORT_TYPES", "POLICY_VERSION", "SAFETY_SIGNALS", "AlertPolicyParams"]

#: The version of the policy's pickled state and semantics. A monitor restored from a pickle
#: of another version is refused (its counters would mean something else).
POLICY_VERSION: Final = "ts-policy/2"
#: What :meth:`AlertPolicy.__setstate__ <twin_stream.domain.alerting.AlertPolicy>` records for a
#: pickle made before versions existed.
UNVERSIONED: Final = "ts-policy/1"

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
