"""Alerts through the sink's points, on a real InfluxQL engine: an alert that changes severity
is shown once, at its current severity, and not after it resolved; and Grafana's rule over the
worker's alerts pages for each page of an alert until it is acknowledged, shelved or resolved
(evaluated as Grafana would: tests/grafana_rules.py)."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import influxql
from tests.grafana_rules import evaluate
from twin_stream.domain.alert_lifecycle import AlertAction
from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.events import Alert, Contribution, Prediction
from twin_stream.grafana import queries as q
from twin_stream.grafana.alert_rules import rule_group
from twin_stream.sink.points import to_points

pytestmark = pytest.mark.services

WORN = [Contribution(metric="motor_current", value=0.42, baseline=0.25, deviation=9.0)]


def _write(base_url: str, db: str, alerts: list[Alert]) -> None:
    lines = [
        p.to_line_protocol()  # type: ignore[no-untyped-call]
        for a in alerts
        for p in to_points("alerts", a.model_dump_json().encode())
    ]
    request = urllib.request.Request(
        f"{base_url}/write?db={db}&precision=ms", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def _rows(base_url: str, db: str, query: q.Query) -> list[dict[str, Any]]:
    result = influxql(base_url, q.render(query.influxql, since="2h"), db)["results"][0]
    assert "error" not in result, result
    rows = []
    for s in result.get("series", []):
        for values in s["values"]:
            rows.append({**s.get("tags", {}), **dict(zip(s["columns"], values, strict=True))})
    return rows


def test_an_alert_that_changed_severity_is_shown_once_at_its_severity(
    influxdb_url: str, unique: str
) -> None:
    db = unique.replace("-", "_")
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    policy = AlertPolicy("pump-0001", "infusion_pump")
    policy.on_telemetry(t0 - timedelta(days=2), 0)  # past the device's learning day
    events: list[Alert] = []
    for i in range(1, 4):
        events += policy.on_score(t0 + timedelta(seconds=i), i, 0.6, WORN)
    for i, ttf in enumerate([3.0, 3.0], start=3):
        prediction = Prediction(
            device_id="pump-0001",
            device_type="infusion_pump",
            metric="motor_current",
            ts=t0 + timedelta(minutes=i),
            value=0.6,
            limit=0.8,
            trend_per_h=0.05,
            time_to_failure_h=ttf,
            detector_version="t",
        )
        events += policy.on_prediction(prediction, i)
    assert [(e.state, e.severity) for e in events] == [
        ("open", "warning"),
        ("updated", "critical"),
    ]
    _write(influxdb_url, db, events)
    by_severity = {
        r["severity"]: r["open"] for r in _rows(influxdb_url, db, q.OPEN_ALERTS_BY_SEVERITY)
    }
    assert by_severity.get("critical") == 1 and not by_severity.get("warning")
    open_rows = _rows(influxdb_url, db, q.OPEN_ALERTS)
    assert [(r["severity"], r["open"]) for r in open_rows] == [("critical", 1)]
    assert "predicted failure" in open_rows[0]["summary"]
    _write(influxdb_url, db, policy.on_maintenance(t0 + timedelta(minutes=10)))
    assert _rows(influxdb_url, db, q.OPEN_ALERTS) == []
    assert not any(r["open"] for r in _rows(influxdb_url, db, q.OPEN_ALERTS_BY_SEVERITY))


def _critical(policy: AlertPolicy, t0: datetime) -> Alert:
    """Open a critical alert on ``policy``: the motor's failure predicted within 3 h."""
    events: list[Alert] = []
    for i in range(2):
        prediction = Prediction(
            device_id="pump-0001",
            device_type="infusion_pump",
            metric="motor_current",
            ts=t0 + timedelta(seconds=i),
            value=0.7,
            limit=0.8,
            trend_per_h=0.03,
            time_to_failure_h=3.0,
            detector_version="t",
        )
        events += policy.on_prediction(prediction, i)
    (alert,) = events
    assert (alert.state, alert.severity, alert.pages) == ("open", "critical", True)
    return alert


def test_grafana_pages_each_worker_page_until_it_is_acknowledged_shelved_or_resolved(
    influxdb_url: str, unique: str
) -> None:
    """The worker-alert rule, evaluated as Grafana would on the sink's points: one instance per
    page of a worker alert, firing while that page is the alert's latest event."""
    db = unique.replace("-", "_")
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    (rule,) = [r for r in rule_group().rules if r.uid == "twin-worker-alerts"]

    def pages() -> list[tuple[str, str, str]]:
        firing = evaluate(rule, lambda query: _series(influxdb_url, db, query))
        return sorted((lb["alert"][:8], lb["event"], lb["page"]) for lb, on in firing if on)

    every = timedelta(minutes=15)
    t0 = datetime.now(UTC) - timedelta(hours=2)
    policy = AlertPolicy("pump-0001", "infusion_pump")
    policy.on_telemetry(t0 - timedelta(days=2), -1)
    alert = _critical(policy, t0)
    a = alert.alert_id[:8]
    _write(influxdb_url, db, [alert])
    assert pages() == [(a, "open", "0")]
    (labels,) = [lb for lb, on in evaluate(rule, lambda qq: _series(influxdb_url, db, qq)) if on]
    assert labels["severity"] == "critical" and labels["device_id"] == "pump-0001"
    assert labels["summary"] == alert.summary  # the worker's own explanation
    # Nobody acknowledged it: re-notified 15 minutes later, a new notification (page 1).
    assert policy.on_clock(t0, every) == []
    renotified = policy.on_clock(t0 + every, every)
    _write(influxdb_url, db, renotified)
    assert pages() == [(a, "renotified", "1")]
    # Acknowledged: it pages nobody, and stays open on the dashboards.
    ack = _action(alert, "ack", t0 + timedelta(minutes=20))
    acked = policy.act(ack, max_shelve_minutes=480)
    assert isinstance(acked, Alert)
    _write(influxdb_url, db, [acked])
    assert pages() == []
    assert [r["open"] for r in _rows(influxdb_url, db, q.OPEN_ALERTS)] == [1]
    assert policy.on_clock(t0 + 4 * every, every) == []
    # A second alert, shelved: quiet while shelved, paging again when it returns.
    other = AlertPolicy("pump-0001", "infusion_pump")
    other.on_telemetry(t0 - timedelta(days=2), -1)
    second = _critical(other, t0 + timedelta(minutes=1))
    b = second.alert_id[:8]
    shelve = _action(second, "shelve", t0 + timedelta(minutes=2), minutes=30.0)
    shelved = other.act(shelve, max_shelve_minutes=480)
    assert isinstance(shelved, Alert)
    _write(influxdb_url, db, [second, shelved])
    assert pages() == []
    returned = other.on_clock(t0 + timedelta(minutes=32), every)
    _write(influxdb_url, db, returned)
    assert [e.state for e in returned] == ["unshelved"]
    assert pages() == [(b, "unshelved", "2")]
    # Resolved (maintenance): nothing pages; the history holds every event.
    _write(influxdb_url, db, policy.on_maintenance(t0 + timedelta(minutes=40)))
    _write(influxdb_url, db, other.on_maintenance(t0 + timedelta(minutes=40)))
    assert pages() == []
    states = sorted(
        (r["alert_id"][:8], r["state"]) for r in _rows(influxdb_url, db, q.ALERT_HISTORY)
    )
    assert states == sorted(
        [(a, s) for s in ("open", "renotified", "acknowledged", "resolved")]
        + [(b, s) for s in ("open", "shelved", "unshelved", "resolved")]
    )


def _action(alert: Alert, verb: str, at: datetime, **fields: Any) -> AlertAction:
    return AlertAction(
        action_id=f"{verb}-{alert.alert_id[:8]}",
        alert_id=alert.alert_id,
        device_id=alert.device_id,
        action=verb,  # type: ignore[arg-type]
        by="alice",
        at=at,
        **fields,
    )


def _series(base_url: str, db: str, query: q.Query) -> list[dict[str, Any]]:
    result = influxql(base_url, q.render(query.influxql, since="2h"), db)["results"][0]
    assert "error" not in result, result
    series: list[dict[str, Any]] = result.get("series", [])
    return series
