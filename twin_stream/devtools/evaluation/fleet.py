"""``twin-stream eval fleet``: the fast-forward simulator through production's per-device path.

Every reading of a simulated fleet goes through :class:`DeviceMonitor` (the detector and alert
policy the workers run); the alerts raised are matched against the simulator's ground truth:

* an *alert* is one alert id that pages people: its severity is warning or critical. It counts
  once, at the first event (``open``, or an ``updated`` that escalates it) with such a severity;
  later updates of the same alert are not new alerts. ``info`` alerts (unusual but not heading
  for failure) are reported apart;
* an alert *matches* a fault when it names the faulty device between the fault's onset and its
  failure time (for a sensor or network fault: its end); every other alert is a false alert;
* precision = matching alerts / all alerts;
* recall = faults with a failure time inside the run (degradations) that got a matching alert
  strictly before failing; an alert at or after the failure is no warning: the failure is missed;
* lead time = failure time minus the first matching alert, median over detected failures;
* both also per fault kind (the ``fault`` of the labels), in ``by_fault_kind``;
* false alerts per device-day = false alerts / (devices x simulated days); the same for info
  alerts.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulators.fast_forward import readings
from simulators.fleet import DEFAULT_START, FleetPlan
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.events import PAGING_SEVERITIES, Alert
from twin_stream.domain.monitor import DeviceMonitor

__all__ = [
    "PAGING_SEVERITIES",
    "FleetEvaluation",
    "RaisedAlert",
    "distinct_alerts",
    "evaluate_fleet",
    "run_fleet",
    "score_alerts",
]


@dataclass(frozen=True)
class RaisedAlert:
    """One distinct alert: when it was raised (paged, for a paging one) and at what severity."""

    alert_id: str
    device_id: str
    kind: str
    severity: str
    at: datetime


@dataclass
class FleetEvaluation:
    events: list[Alert]  # every alert event of the run, in order
    labels: list[dict[str, Any]]
    devices: int
    hours: float


def distinct_alerts(events: Iterable[Alert]) -> tuple[list[RaisedAlert], list[RaisedAlert]]:
    """The paging alerts and the info-only alerts among a run's alert events.

    One entry per alert id. A paging alert is raised at its first event (``open`` or
    ``updated``) whose severity pages; an alert that never pages is an info alert, raised when
    it opened. Resolve events raise nothing.
    """
    paging: dict[str, RaisedAlert] = {}
    opened: dict[str, RaisedAlert] = {}
    for event in events:
        if event.state == "resolved":
            continue
        if event.state == "open" and event.alert_id not in opened:
            opened[event.alert_id] = _raised(event, event.opened_at)
        if event.pages and event.alert_id not in paging:
            at = event.opened_at if event.state == "open" else event.ts
            paging[event.alert_id] = _raised(event, at)
    info = [a for alert_id, a in opened.items() if alert_id not in paging]
    return list(paging.values()), info


def _raised(event: Alert, at: datetime) -> RaisedAlert:
    return RaisedAlert(event.alert_id, event.device_id, event.kind, event.severity, at)


def run_fleet(
    plan: FleetPlan,
    *,
    interval_s: float,
    start: datetime = DEFAULT_START,
    progress: Callable[[float], None] | None = None,
) -> FleetEvaluation:
    """Feed every reading of ``plan`` through one :class:`DeviceMonitor` per device."""
    monitors: dict[str, DeviceMonitor] = {}
    events: list[Alert] = []
    for reading in readings(plan, interval_s=interval_s, start=start, progress=progress):
        monitor = monitors.get(reading.device_id)
        if monitor is None:
            device_type: str = reading.device_type
            monitor = monitors[reading.device_id] = DeviceMonitor(reading.device_id, device_type)
        metrics = reading.metrics.model_dump()
        events += monitor.on_reading(reading.ts, reading.seq, metrics).alerts
    return FleetEvaluation(events, plan.labels(start), len(plan.devices), plan.hours)


def _parse(ts: str | None) -> datetime | None:
    return None if ts is None else datetime.fromisoformat(ts)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def score_alerts(evaluation: FleetEvaluation, run_end: datetime) -> dict[str, Any]:
    """Precision, recall, lead time and false alerts per device-day of one run."""
    faults = []
    for label in evaluation.labels:
        onset = _parse(label["onset"])
        assert onset is not None
        end = _parse(label["failure"]) or _parse(label["end"]) or run_end
        faults.append((label, onset, end))
    notifying, info = distinct_alerts(evaluation.events)
    matching = 0
    first_alert: dict[int, datetime] = {}
    for alert in notifying:
        hit = False
        for i, (label, onset, end) in enumerate(faults):
            if label["device_id"] == alert.device_id and onset <= alert.at <= end:
                hit = True
                first_alert[i] = min(first_alert.get(i, alert.at), alert.at)
        matching += hit
    failing: list[tuple[int, datetime]] = []
    for i, (label, _, _) in enumerate(faults):
        failure = _parse(label["failure"])
        if failure is not None and failure <= run_end:
            failing.append((i, failure))
    # Detected: warned strictly before the failure (an alert at the failure is no warning).
    leads: dict[int, float] = {
        i: (failure - first_alert[i]).total_seconds() / 3600
        for i, failure in failing
        if i in first_alert and first_alert[i] < failure
    }
    precision = matching / len(notifying) if notifying else 0.0
    recall = len(leads) / len(failing) if failing else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    device_days = evaluation.devices * evaluation.hours / 24.0
    false_alerts = len(notifying) - matching

    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({str(faults[i][0]["fault"]) for i, _ in failing}):
        kind_failing = [i for i, _ in failing if faults[i][0]["fault"] == kind]
        kind_leads = [leads[i] for i in kind_failing if i in leads]
        by_kind[kind] = {
            "failures": len(kind_failing),
            "failures_detected": len(kind_leads),
            "recall": round(len(kind_leads) / len(kind_failing), 3),
            "median_lead_time_h": _median(kind_leads),
        }
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "median_lead_time_h": _median(list(leads.values())),
        "false_alerts_per_device_day": round(false_alerts / device_days, 3),
        "info_alerts_per_device_day": round(len(info) / device_days, 3),
        "alerts": len(notifying),
        "info_alerts": len(info),
        "false_alerts": false_alerts,
        "faults": len(faults),
        "failures": len(failing),
        "failures_detected": len(leads),
        "by_fault_kind": by_kind,
        "detector": DETECTOR_VERSION,
    }


def evaluate_fleet(
    devices: int,
    hours: float,
    seed: int,
    *,
    fault_fraction: float = 0.3,
    interval_s: float = 60.0,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    plan = FleetPlan.generate(
        devices, hours=hours, fault_fraction=fault_fraction, seed=seed, sample_interval_s=interval_s
    )
    evaluation = run_fleet(plan, interval_s=interval_s, progress=progress)
    result = score_alerts(evaluation, DEFAULT_START + timedelta(hours=hours))
    result.update(
        {
            "devices": devices,
            "hours": hours,
            "seed": seed,
            "fault_fraction": fault_fraction,
            "interval_s": interval_s,
        }
    )
    return result
