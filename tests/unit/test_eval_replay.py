"""``eval replay``: DeviceMonitor over a CSV of historical readings generated here."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from twin_stream.devtools.evaluation.replay import parse_time, replay_csv, sniff_columns

T0 = datetime(2025, 6, 1, tzinfo=UTC)
NORMAL_ROWS = 2000
FAULT_ROWS = 300
FAULTY = "Pump B"  # not a valid platform device id as it stands: the replay maps it


def write_history(path: Path) -> datetime:
    """Two devices interleaved: ``pump-a`` healthy throughout; ``Pump B`` healthy for 2000
    readings, then its signal ``x`` shifted by +10 sd for good. Returns the fault's start."""
    rng = random.Random(7)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ts", "device_id", "x", "y", "site", "seq"])
        for i in range(NORMAL_ROWS + FAULT_ROWS):
            ts = (T0 + timedelta(seconds=10 * i)).isoformat()
            for device in ("pump-a", FAULTY):
                shift = 10.0 if device == FAULTY and i >= NORMAL_ROWS else 0.0
                x = 50.0 + rng.gauss(0, 1) + shift
                y = "" if i % 97 == 0 else f"{20.0 + rng.gauss(0, 2):.3f}"  # gaps: missing
                writer.writerow([ts, device, f"{x:.3f}", y, "ward-3", i])
    return T0 + timedelta(seconds=10 * NORMAL_ROWS)


def test_columns_time_formats_and_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    write_history(path)
    columns = sniff_columns(path, "ts", "device_id")
    assert (columns.signals, columns.seq, columns.device) == (["x", "y"], "seq", "device_id")
    assert columns.rows == 2 * (NORMAL_ROWS + FAULT_ROWS)
    assert parse_time("1748736000") == parse_time("2025-06-01T00:00:00") == T0
    assert parse_time("2025-06-01T02:00:00+02:00") == T0


def test_one_device_named_after_the_file_with_epoch_times(tmp_path: Path) -> None:
    path = tmp_path / "Chiller 7.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "temp", "note"])
        for i in range(300):
            writer.writerow([1748736000 + 60 * i, 4.0 + (i % 5) * 0.1, "ok"])
    summary = replay_csv(path, tmp_path / "out", time_col="time")
    assert (summary["devices"], summary["rows"], summary["signals"]) == (1, 300, ["temp"])
    assert list(summary["first_alert_ts"]) == ["Chiller 7"]
    with open(tmp_path / "out" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["ts"] == "2025-06-01T00:00:00+00:00" and rows[0]["device_id"] == "Chiller 7"


def test_eval_replay_alerts_after_a_sustained_fault_and_not_before(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    fault_start = write_history(path)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "twin_stream", "eval", "replay", str(path), "--out", str(out)]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) >= {"devices", "rows", "alerts", "first_alert_ts"}
    assert summary["devices"] == 2
    assert summary["rows"] == 2 * (NORMAL_ROWS + FAULT_ROWS)
    assert set(summary["first_alert_ts"]) == {"pump-a", FAULTY}

    with open(out / "scores.csv") as f:
        scores = list(csv.DictReader(f))
    assert list(scores[0]) == ["ts", "device_id", "score", "warming_up", "top_signal"]
    assert len(scores) == summary["rows"]
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in scores)
    events = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    for e in events:
        assert {"alert_id", "device_id", "ts", "kind", "severity", "state", "summary"} <= set(e)
    paged = {e["alert_id"] for e in events if e["state"] != "resolved" and e["severity"] != "info"}
    assert summary["alerts"] == len(paged)

    # The faulty device: an alert after the fault starts, none before it.
    first = summary["first_alert_ts"][FAULTY]
    assert first is not None, "no alert for a +10 sd sustained shift"
    assert datetime.fromisoformat(first) >= fault_start
    faulty_events = [e for e in events if e["device_id"] == FAULTY]
    pages = [e for e in faulty_events if e["severity"] != "info"]
    assert pages and all(datetime.fromisoformat(e["ts"]) >= fault_start for e in pages)
    assert any(e["kind"] == "anomaly" and e["state"] == "open" for e in faulty_events)
    # The healthy device's noise pages nobody (an info finding may open; it pages no one).
    assert summary["first_alert_ts"]["pump-a"] is None
    shifted = [r for r in scores if r["device_id"] == FAULTY and r["ts"] >= fault_start.isoformat()]
    assert "x" in {r["top_signal"] for r in shifted}
