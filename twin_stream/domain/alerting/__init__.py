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

The package, one job per module:

* ``params``: :class:`AlertPolicyParams`, every threshold with its source, and the version;
* ``wording``: how alerts read (durations, units, each condition's text);
* ``state``: what is remembered per condition and per alert;
* ``merge``: a device's alert state, and the merging of one slot's conditions into events;
* ``anomaly``, ``predicted_failure`` (with the health index's degradation), ``data_quality``,
  ``connectivity``: one kind of condition each, with its feed;
* ``policy``: :class:`AlertPolicy`, all of them for one device.

An alert's whole life, on a pump whose motor wears out:

>>> from datetime import datetime, timedelta, timezone
>>> from twin_stream.domain.alerting import AlertPolicy
>>> from twin_stream.domain.events import Contribution, PredictionRecord
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

from twin_stream.domain.alerting.params import (
    LIFE_SUPPORT_TYPES,
    POLICY_VERSION,
    SAFETY_SIGNALS,
    AlertPolicyParams,
)
from twin_stream.domain.alerting.policy import AlertPolicy

# Checkpoints pickled when the policy was one module (domain/alerting.py) name its state's
# classes by this path: importable here, that state loads as it is (same ``POLICY_VERSION``).
from twin_stream.domain.alerting.state import _Condition as _Condition
from twin_stream.domain.alerting.state import _Slot as _Slot

__all__ = [
    "LIFE_SUPPORT_TYPES",
    "POLICY_VERSION",
    "SAFETY_SIGNALS",
    "AlertPolicy",
    "AlertPolicyParams",
]
