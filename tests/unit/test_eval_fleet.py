"""``eval fleet``'s matching of alerts to the simulator's ground truth, on hand-made alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twin_stream.devtools.evaluation.fleet import FleetEvaluation, distinct_alerts, score_alerts
from twin_stream.domain.events import Alert

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def label(device: str, fault: str, onset_h: float, failure_h: float | None) -> dict[str, Any]:
    return {
        "device_id": device,
        "device_type": "infusion_pump",
        "fault": fault,
        "category": "degradation" if failure_h is not None else "sensor",
        "metric": "motor_current",
        "onset": at(onset_h).isoformat(),
        "failure": at(failure_h).isoformat() if failure_h is not None else None,
        "end": None if failure_h is not None else at(onset_h + 1).isoformat(),
        "repaired": None,
    }


def event(
    alert_id: str, device: str, severity: str, opened_h: float, state: str = "open", ts_h: float = 0
) -> Alert:
    # model_construct: the policy's "updated" state may not be in the model's Literal yet
    return Alert.model_construct(
        alert_id=alert_id,
        device_id=device,
        device_type="infusion_pump",
        kind="anomaly",
        severity=severity,
        state=state,
        opened_at=at(opened_h),
        ts=at(max(opened_h, ts_h)),
        summary="test",
        detector_version="test",
    )


def test_alerts_match_faults_only_before_the_failure() -> None:
    labels = [
        label("pump-0001", "motor_wear", 10, 20),
        label("pump-0002", "motor_wear", 10, 20),
        label("pump-0003", "occlusion", 10, 20),
        label("pump-0004", "occlusion", 10, 20),
        label("pump-0005", "stuck_sensor", 2, None),
    ]
    events = [
        event("a", "pump-0001", "warning", 15),  # 5 h ahead
        event("a", "pump-0001", "critical", 15, "updated", 16),  # an update, not a new alert
        event("a", "pump-0001", "critical", 15, "resolved", 17),
        event("b", "pump-0002", "warning", 21),  # after the failure: missed, and a false alert
        event("c", "pump-0003", "info", 12),  # info: pages nobody...
        event("c", "pump-0003", "warning", 12, "updated", 18),  # ...until it escalates: 2 h ahead
        event("d", "pump-0004", "critical", 20),  # at the failure: no warning, missed
        event("e", "pump-0006", "warning", 5),  # a healthy device: false
        event("f", "pump-0006", "info", 6),  # info only
        event("g", "pump-0005", "warning", 2.5),  # during a sensor fault: matches, no failure
    ]
    evaluation = FleetEvaluation(events, labels, devices=6, hours=24)
    figures = score_alerts(evaluation, run_end=at(24))
    assert figures["alerts"] == 6  # a, b, c, d, e, g
    assert figures["info_alerts"] == 1  # f (c escalated)
    assert figures["false_alerts"] == 2  # b, e
    assert figures["precision"] == pytest.approx(round(4 / 6, 3))
    assert (figures["failures"], figures["failures_detected"]) == (4, 2)
    assert figures["recall"] == 0.5
    assert figures["median_lead_time_h"] == 3.5
    assert figures["false_alerts_per_device_day"] == round(2 / 6, 3)
    assert figures["info_alerts_per_device_day"] == round(1 / 6, 3)
    assert figures["by_fault_kind"] == {
        "motor_wear": {
            "failures": 2,
            "failures_detected": 1,
            "recall": 0.5,
            "median_lead_time_h": 5.0,
        },
        "occlusion": {
            "failures": 2,
            "failures_detected": 1,
            "recall": 0.5,
            "median_lead_time_h": 2.0,
        },
    }


def test_distinct_alerts_count_each_alert_id_once() -> None:
    paging, info = distinct_alerts(
        [
            event("a", "pump-0001", "warning", 1),
            event("a", "pump-0001", "warning", 1, "updated", 2),
            event("a", "pump-0001", "warning", 1, "resolved", 3),
            event("b", "pump-0001", "info", 4),
            event("b", "pump-0001", "info", 4, "updated", 5),
        ]
    )
    assert [(a.alert_id, a.at) for a in paging] == [("a", at(1))]
    assert [(a.alert_id, a.at) for a in info] == [("b", at(4))]
