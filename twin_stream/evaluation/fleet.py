"""``twin-stream eval fleet``: the fast-forward simulator through the detector and alert policy.

Every reading of a simulated fleet goes through the same per-device code the workers run
(:class:`DeviceDetector` and :class:`AlertPolicy`); the alerts raised are matched against the
simulator's ground truth:

* an alert *matches* a fault when it names the faulty device between the fault's onset and its
  failure time (for a sensor or network fault: its end); every other alert is a false alert;
* only alerts that notify people count (severity warning or critical); ``info`` alerts (unusual
  but not heading for failure) are reported apart;
* precision = matching alerts / all alerts raised;
* recall = faults with a failure time (degradations) that got a matching alert before failing;
* lead time = failure time minus the first matching alert, median over detected faults;
* false alerts per device-day = false alerts / (devices x simulated days).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulators.fast_forward import readings
from simulators.fleet import DEFAULT_START, FleetPlan
from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.detection.detector import DeviceDetector
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.events import Alert

__all__ = ["FleetEvaluation", "evaluate_fleet", "run_fleet"]


@dataclass
class FleetEvaluation:
    alerts: list[Alert]
    labels: list[dict[str, Any]]
    devices: int
    hours: float


def run_fleet(
    plan: FleetPlan,
    *,
    interval_s: float,
    start: datetime = DEFAULT_START,
    progress: Callable[[float], None] | None = None,
) -> FleetEvaluation:
    """Feed every reading of ``plan`` through per-device detectors and alert policies."""
    detectors: dict[str, DeviceDetector] = {}
    policies: dict[str, AlertPolicy] = {}
    raised: list[Alert] = []
    for reading in readings(plan, interval_s=interval_s, start=start, progress=progress):
        device_type: str = reading.device_type  # type: ignore[attr-defined]
        detector = detectors.get(reading.device_id)
        if detector is None:
            detector = detectors[reading.device_id] = DeviceDetector(reading.device_id, device_type)
            policies[reading.device_id] = AlertPolicy(reading.device_id, device_type)
        policy = policies[reading.device_id]
        out = detector.process(reading.ts, reading.seq, reading.metrics.model_dump())  # type: ignore[attr-defined]
        events = (
            []
            if out.score.warming_up
            else policy.on_score(reading.ts, reading.seq, out.score.score, out.contributions)
        )
        for prediction in out.predictions:
            events += policy.on_prediction(prediction, reading.seq)
        raised += [e for e in events if e.state == "open"]
    return FleetEvaluation(raised, plan.labels(start), len(plan.devices), plan.hours)


def _parse(ts: str | None) -> datetime | None:
    return None if ts is None else datetime.fromisoformat(ts)


def score_alerts(evaluation: FleetEvaluation, run_end: datetime) -> dict[str, Any]:
    """Precision, recall, lead time and false alerts per device-day of one run."""
    faults = []
    for label in evaluation.labels:
        onset = _parse(label["onset"])
        assert onset is not None
        end = _parse(label["failure"]) or _parse(label["end"]) or run_end
        faults.append((label, onset, end))
    matching = 0
    first_alert: dict[int, datetime] = {}
    notifying = [a for a in evaluation.alerts if a.severity != "info"]
    for alert in notifying:
        hit = False
        for i, (label, onset, end) in enumerate(faults):
            if label["device_id"] == alert.device_id and onset <= alert.opened_at <= end:
                hit = True
                first_alert[i] = min(first_alert.get(i, alert.opened_at), alert.opened_at)
        matching += hit
    failing = [
        (i, _parse(label["failure"]))
        for i, (label, _, _) in enumerate(faults)
        if label["failure"] is not None and _parse(label["failure"]) <= run_end  # type: ignore[operator]
    ]
    detected = [(i, failure) for i, failure in failing if i in first_alert]
    leads = [(failure - first_alert[i]).total_seconds() / 3600 for i, failure in detected]  # type: ignore[operator]
    precision = matching / len(notifying) if notifying else 0.0
    recall = len(detected) / len(failing) if failing else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    device_days = evaluation.devices * evaluation.hours / 24.0
    false_alerts = len(notifying) - matching
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "median_lead_time_h": round(statistics.median(leads), 2) if leads else None,
        "false_alerts_per_device_day": round(false_alerts / device_days, 3),
        "alerts": len(notifying),
        "info_alerts": len(evaluation.alerts) - len(notifying),
        "false_alerts": false_alerts,
        "faults": len(faults),
        "failures": len(failing),
        "failures_detected": len(detected),
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
