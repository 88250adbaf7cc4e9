"""The demo's live view and report from what the platform produced (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from rich.console import Console

from twin_stream.devtools.demo.live_view import render
from twin_stream.devtools.demo.observer import Observer
from twin_stream.devtools.demo.report import write_report
from twin_stream.devtools.demo.run import score_devices

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)
TYPES = {"pump-0001": "infusion_pump", "vent-0002": "ventilator"}


def observed() -> Observer:
    observer = Observer("unused:9092", {})
    for i in range(50):
        ts = (T0 + timedelta(seconds=i)).isoformat()
        for device in TYPES:
            reading = {"device_id": device, "ts": ts, "metrics": {"motor_current": 0.3 + i / 100}}
            observer._take("telemetry", orjson.dumps(reading), 0)
            score = {
                "device_id": device,
                "ts": ts,
                "score": 0.5 if device == "vent-0002" else i / 50,
            }
            observer._take(
                "scores", orjson.dumps(score), int(T0.timestamp() * 1000) + i * 1000 + 80
            )
    prediction = {
        "device_id": "pump-0001",
        "metric": "motor_current",
        "ts": T0.isoformat(),
        "time_to_failure_h": 0.5,
        "lower_h": 0.4,
        "upper_h": 0.7,
    }
    observer._take("predictions", orjson.dumps(prediction), 0)
    alert = {
        "device_id": "pump-0001",
        "kind": "predicted_failure",
        "severity": "critical",
        "state": "open",
        "opened_at": (T0 + timedelta(seconds=30)).isoformat(),
        "summary": "motor_current reaches its limit in 0.5 h",
    }
    observer._take("alerts", orjson.dumps(alert), 0)
    observer._take("twins", orjson.dumps({"device_id": "pump-0001", "connectivity": "online"}), 0)
    return observer


def test_the_live_view_shows_the_fleet_the_pace_and_what_was_caught() -> None:
    observer = observed()
    observer.snapshot({"published": 100})
    console = Console(width=160, record=True)
    console.print(
        render(
            observer,
            device_types=TYPES,
            totals={"published": 100},
            elapsed_s=10,
            duration_s=60,
            speed=120,
        )
    )
    text = console.export_text()
    for expected in (
        "infusion_pump",
        "Pipeline",
        "pump-0001",
        "motor_current",
        "critical",
        "30.0 min",
        "60.0 h",
        "p50 / p99",
        "80 / 80 ms",
    ):
        assert expected in text, expected


def test_the_report_names_the_alerted_pump_and_its_figures(tmp_path: Path) -> None:
    observer = observed()
    truth = [
        {
            "device_id": "pump-0001",
            "fault": "motor_wear",
            "metric": "motor_current",
            "onset": T0.isoformat(),
            "failure": (T0 + timedelta(hours=1)).isoformat(),
        }
    ]
    summary = score_devices(truth, observer.alerts, T0 + timedelta(minutes=5))
    assert summary["alerted_devices"] == ["pump-0001"] and summary["recall"] == 1.0
    summary.update(
        {"published": 100, "msgs_per_s": 2.0, "p50_ms": 80.0, "p99_ms": 90.0, "speed": 120.0}
    )
    page = write_report(
        tmp_path / "r.html", observer, summary=summary, truth=truth, device_types=TYPES
    ).read_text()
    assert "<h2>pump-0001 (infusion_pump)</h2>" in page
    assert "<h2>vent-0002" not in page  # not alerted: no section
    assert "motor_current reaches its limit" in page and "80 / 90" in page
    assert "<td>infusion_pump</td><td>1</td><td>1</td><td>1</td>" in page
