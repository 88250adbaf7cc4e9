"""Degradation alerts from the health index, through the monitor every path runs: a device of a
type without failure limits that drifts away from its frozen healthy reference is paged
(warning, then critical) with the signals that moved most; a healthy one is not; a type with
failure limits keeps its trend-to-limit prediction and is never paged for its health index; the
reference survives a checkpoint and is learned again on maintenance; the fleet's RUL shows in
the alert's text."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.events import Alert, PredictionRecord
from twin_stream.domain.monitor import DeviceMonitor

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _drive(monitor: DeviceMonitor, start: int, stop: int, drift_from: int | None) -> list[Alert]:
    rng = random.Random(start)
    alerts: list[Alert] = []
    for i in range(start, stop):
        drift = 0.0 if drift_from is None else max(0.0, (i - drift_from) / 60.0) * 0.5
        metrics: dict[str, float | None] = {
            "a": 10.0 + rng.gauss(0, 1),
            "b": 5.0 + rng.gauss(drift, 1),
            "c": 1.0 + rng.gauss(0, 0.1),
        }
        alerts += monitor.on_reading(T0 + timedelta(minutes=i), i, metrics).alerts
    return alerts


def test_a_drifting_unit_of_a_type_without_limits_is_paged_naming_the_signal() -> None:
    monitor = DeviceMonitor("unit-0001", "replay")
    alerts = _drive(monitor, 0, 3000, drift_from=1500)
    degradation = [a for a in alerts if a.details.get("root") == "health"]
    assert degradation, [a.summary for a in alerts]
    first = degradation[0]
    assert first.pages and first.severity == "warning" and first.kind == "predicted_failure"
    assert first.summary.startswith("degradation: health index") and "b +" in first.summary
    assert first.details["drivers"][0] == "b"
    assert any(a.severity == "critical" for a in degradation)
    assert first.opened_at > T0 + timedelta(minutes=1500)  # not before the drift began


def test_a_healthy_unit_is_not_paged_for_its_health() -> None:
    monitor = DeviceMonitor("unit-0002", "replay")
    alerts = _drive(monitor, 0, 3000, drift_from=None)
    assert not [a for a in alerts if a.details.get("root") == "health"]


def test_a_type_with_failure_limits_is_not_paged_for_its_health_index() -> None:
    policy = AlertPolicy("pump-0001", "infusion_pump")
    events = policy.on_health(T0, 1, stage=2, index=9.0, trend_per_h=1.0, drivers=[("x", 9.0)])
    assert events == []


def test_the_reference_survives_a_checkpoint_and_maintenance_relearns_it() -> None:
    monitor = DeviceMonitor("unit-0003", "replay")
    _drive(monitor, 0, 600, drift_from=None)
    assert monitor.detector.health.reference_frozen
    restored = DeviceMonitor.loads(monitor.dumps())
    health = restored.detector.health
    assert health.reference_frozen and health.frozen_ts == monitor.detector.health.frozen_ts
    a = _drive(monitor, 600, 700, drift_from=None)
    b = _drive(restored, 600, 700, drift_from=None)
    assert a == b and monitor.detector.health.last == restored.detector.health.last
    restored.on_maintenance(T0 + timedelta(minutes=700))
    assert not restored.detector.health.reference_frozen


def test_the_fleets_remaining_useful_life_is_in_the_alert_and_on_the_predictions() -> None:
    fleet = FleetModel()
    for life in (40.0, 45.0, 50.0, 42.0):  # hours of life after the reference froze
        path = [(t / 6.0, max(0.0, t / 6.0 - (life - 20.0)) * 2.0) for t in range(int(life * 6))]
        fleet.learn(path, failed_after_h=life)
    monitor = DeviceMonitor("unit-0004", "replay")
    rng = random.Random(4)
    alerts: list[Alert] = []
    ruls: list[PredictionRecord] = []
    for i in range(0, 3000):
        drift = max(0.0, (i - 1500) / 60.0) * 0.5
        metrics: dict[str, float | None] = {
            "a": 10.0 + rng.gauss(0, 1),
            "b": 5.0 + rng.gauss(drift, 1),
        }
        out = monitor.on_reading(T0 + timedelta(minutes=i), i, metrics, fleet=fleet)
        alerts += out.alerts
        ruls += [p for p in out.predictions if p.metric == "health_index"]
    assert ruls and all(p.time_to_failure_h is not None for p in ruls)
    assert all(p.lower_h <= p.time_to_failure_h <= p.upper_h for p in ruls)  # type: ignore[operator]
    texts = [a.summary for a in alerts if a.details.get("root") == "health"]
    assert any("remaining useful life" in t and "(fleet-learned)" in t for t in texts), texts
