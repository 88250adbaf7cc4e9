"""The alert policy: minimum duration, hysteresis, cooldown, dedup, severity, explanations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin_stream.domain.alerting import AlertPolicy, AlertPolicyParams
from twin_stream.domain.events import Alert, Contribution, Prediction

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WORN = [Contribution(metric="motor_current", value=0.7, baseline=0.25, deviation=12.0)]
CHARGING = [Contribution(metric="battery", value=100.0, baseline=80.0, deviation=8.0)]


def run(policy: AlertPolicy, scores: list[float], top: list[Contribution] = WORN) -> list[Alert]:
    events: list[Alert] = []
    for i, score in enumerate(scores):
        events += policy.on_score(T0 + timedelta(seconds=i), i, score, top)
    return events


def test_minimum_duration_hysteresis_and_resolve() -> None:
    policy = AlertPolicy("pump-0001", "infusion_pump")
    assert run(policy, [0.9999, 0.9999, 0.5]) == []  # two readings are not enough
    events = run(policy, [0.9999] * 3 + [0.995] * 20 + [0.5] * 9)
    assert [e.state for e in events] == ["open"]  # 0.995 is above the clear level: stays open
    events = run(policy, [0.5])
    assert [e.state for e in events] == ["resolved"]
    assert events[0].resolved_at is not None and events[0].alert_id


def test_one_open_alert_per_device_and_kind_and_cooldown() -> None:
    params = AlertPolicyParams(cooldown_readings=50)
    policy = AlertPolicy("pump-0001", "infusion_pump", params)
    events = run(policy, [0.9999] * 100)
    assert len(events) == 1 and len(policy.open_alerts()) == 1
    run(policy, [0.1] * 10)
    assert policy.open_alerts() == []
    assert run(policy, [0.9999] * 20) == []  # cooling down
    assert len(run(policy, [0.9999] * 40)) == 1


def test_severity_depends_on_heading_for_failure() -> None:
    assert run(AlertPolicy("pump-0001", "infusion_pump"), [0.9999] * 3)[0].severity == "warning"
    assert (
        run(AlertPolicy("pump-0001", "infusion_pump"), [0.99999999] * 3)[0].severity == "critical"
    )
    charging = run(AlertPolicy("pump-0001", "infusion_pump"), [0.99999999] * 3, CHARGING)
    assert charging[0].severity == "info"


def test_alert_explains_itself_with_its_seq_range() -> None:
    alert = run(AlertPolicy("pump-0001", "infusion_pump"), [0.1, 0.9999, 0.9999, 0.9999])[0]
    assert alert.summary == "anomaly: motor_current 0.7 vs baseline 0.25 (+12.0 sd)"
    assert alert.contributions == WORN
    assert (alert.seq_first, alert.seq_last) == (1, 3)
    assert alert.detector_version


def prediction(ttf: float | None, metric: str = "motor_current") -> Prediction:
    return Prediction(
        device_id="pump-0001",
        device_type="infusion_pump",
        metric=metric,
        ts=T0,
        value=0.6,
        limit=0.8,
        trend_per_h=0.02,
        time_to_failure_h=ttf,
        lower_h=None if ttf is None else ttf * 0.8,
        upper_h=None if ttf is None else ttf * 1.3,
        detector_version="t",
    )


def test_predictive_alert_raises_inside_the_horizon_and_resolves() -> None:
    policy = AlertPolicy("pump-0001", "infusion_pump")
    assert policy.on_prediction(prediction(30.0)) == []
    assert policy.on_prediction(prediction(10.0)) == []
    opened = policy.on_prediction(prediction(9.0))
    assert len(opened) == 1 and opened[0].severity == "warning"
    assert "limit in 9.0 h (7.2 h to 12 h)" in opened[0].summary
    assert opened[0].prediction is not None
    # another signal's reports neither duplicate nor resolve it
    assert policy.on_prediction(prediction(None, "battery")) == []
    assert policy.on_prediction(prediction(None)) == []
    assert policy.on_prediction(prediction(None)) == []
    assert [e.state for e in policy.on_prediction(prediction(None))] == ["resolved"]


def test_critical_when_failure_is_close() -> None:
    policy = AlertPolicy("pump-0001", "infusion_pump")
    policy.on_prediction(prediction(3.0))
    assert policy.on_prediction(prediction(2.5))[0].severity == "critical"
