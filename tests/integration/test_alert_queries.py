"""An alert that changes severity, through the sink's points, on a real InfluxQL engine: the
open-alert queries show it once, at its current severity, and not after it resolved."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_influxql import influxql
from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.events import Alert, Contribution, Prediction
from twin_stream.grafana import queries as q
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
