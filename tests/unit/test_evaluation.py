"""NAB's scoring rules as implemented here; ``eval nab`` and ``eval fleet`` end to end.

``eval nab`` runs on small files generated here in NAB's format (no file outside the repo).
"""

from __future__ import annotations

import csv
import json
import math
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from twin_stream.devtools.evaluation.nab import parse_nab_ts
from twin_stream.devtools.evaluation.nab_scoring import (
    PROFILES,
    best_threshold,
    normalized_score,
    scaled_sigmoid,
    sweep_rows,
)
from twin_stream.domain.monitor import DeviceMonitor


def test_scaled_sigmoid_matches_nab() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.0) == -1.0


def corpus_score(scores: list[float], windows: list[tuple[int, int]], profile: str) -> float:
    p = PROFILES[profile]
    rows = sweep_rows("f", scores, windows, p)
    names = {r.window for r in rows if r.window is not None}
    _, raw = best_threshold([rows], names, p)
    return normalized_score(raw, len(names), p)


WINDOWS = [(400, 449), (700, 749)]


def test_perfect_null_late_and_noisy_detectors() -> None:
    n = 1000
    perfect = [1.0 if i in (400, 700) else 0.0 for i in range(n)]
    assert corpus_score(perfect, WINDOWS, "standard") == pytest.approx(100.0)
    assert corpus_score([0.0] * n, WINDOWS, "standard") == pytest.approx(0.0)
    at_right_edge = [1.0 if i in (449, 749) else 0.0 for i in range(n)]
    late = corpus_score(at_right_edge, WINDOWS, "standard")
    assert 0.0 < late < 60.0  # detected, but worth little
    # early detections plus five false alarms before the first window (past probation)
    noisy = [1.0 if i in (400, 700, 200, 220, 240, 260, 280) else 0.0 for i in range(n)]
    assert corpus_score(noisy, WINDOWS, "standard") == pytest.approx(100 * (2 - 5 * 0.11 + 2) / 4)
    assert corpus_score(noisy, WINDOWS, "reward_low_FP_rate") == pytest.approx(
        100 * (2 - 5 * 0.22 + 2) / 4
    )


def test_false_positive_before_any_window_costs_the_full_weight() -> None:
    p = PROFILES["standard"]
    rows = sweep_rows("f", [0.0] * 1000, WINDOWS, p)
    before = [r for r in rows if r.window is None][0]
    assert before.weight == pytest.approx(-p.fp)
    just_after = next(r for i, r in enumerate(rows) if r.window is None and i > 300)
    assert -p.fp < just_after.weight <= 0.0 or math.isclose(just_after.weight, -p.fp)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twin_stream", *args], capture_output=True, text=True, timeout=600
    )


NAB_TS = "%Y-%m-%d %H:%M:%S"
NAB_T0 = datetime(2014, 4, 1)


def nab_stamp(i: int) -> str:
    """Row ``i``'s time as NAB's label files write it."""
    return (NAB_T0 + timedelta(minutes=5 * i)).strftime(NAB_TS) + ".000000"


def write_nab_file(data: Path, key: str, rows: int, anomaly_at: int, seed: int) -> tuple[str, str]:
    """A NAB-format file (5-minute steps, a daily cycle plus noise, a jump at ``anomaly_at``);
    returns its labelled window as NAB writes it (timestamps with microseconds)."""
    rng = random.Random(seed)
    path = data / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value"])
        for i in range(rows):
            value = 50 + 5 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 1)
            if i >= anomaly_at:
                value += 40
            writer.writerow([nab_stamp(i).split(".")[0], f"{value:.4f}"])
    return nab_stamp(anomaly_at - 20), nab_stamp(anomaly_at + 20)


@pytest.fixture
def nab_corpus(tmp_path: Path) -> tuple[Path, Path, dict[str, list[list[str]]]]:
    data = tmp_path / "data"
    windows = {
        "artificialWithAnomaly/art_daily_jump.csv": [
            list(write_nab_file(data, "artificialWithAnomaly/art_daily_jump.csv", 1200, 900, 1))
        ],
        "realKnownCause/machine_jump.csv": [
            # inside the probation period (the first 150 rows): NAB scores no row of it, and its
            # sweeper leaves such a window out of the sum (and so of the normalisation)
            [nab_stamp(40), nab_stamp(60)],
            list(write_nab_file(data, "realKnownCause/machine_jump.csv", 1000, 700, 2)),
        ],
    }
    labels = tmp_path / "combined_windows.json"
    labels.write_text(json.dumps(windows))
    return data, labels, windows


def test_eval_nab_scores_exactly_what_production_scores(
    nab_corpus: tuple[Path, Path, dict[str, list[list[str]]]], tmp_path: Path
) -> None:
    data, labels, windows = nab_corpus
    out = tmp_path / "out"
    result = run(
        "eval", "nab", "--data", str(data), "--labels", str(labels), "--out", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["files"] == 2
    assert set(scores) >= {"standard", "reward_low_FP_rate", "reward_low_FN_rate", "detector"}
    assert all(-1000 < scores[p]["score"] <= 100 and scores[p]["windows"] == 2 for p in PROFILES)

    key = "artificialWithAnomaly/art_daily_jump.csv"
    written = out / "twinstream/artificialWithAnomaly/twinstream_art_daily_jump.csv"
    with open(written) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert len(rows) == 1200
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    ((start, end),) = windows[key]
    labelled = [r["timestamp"] for r in rows if r["label"] == "1"]
    assert labelled[0] == start.split(".")[0] and labelled[-1] == end.split(".")[0]

    # Row by row, the score is a fresh production monitor's, with no post-processing.
    with open(data / key) as f:
        source = list(csv.DictReader(f))
    monitor = DeviceMonitor("nab", "nab")
    expected = [
        monitor.on_reading(
            parse_nab_ts(r["timestamp"]), seq, {"value": float(r["value"])}
        ).score.score
        for seq, r in enumerate(source)
    ]
    assert [float(r["anomaly_score"]) for r in rows] == [round(s, 6) for s in expected]


def test_nab_timestamps_are_utc() -> None:
    assert parse_nab_ts("2014-04-01 00:05:00").isoformat() == "2014-04-01T00:05:00+00:00"


def test_eval_fleet_finds_failing_devices_before_they_fail() -> None:
    result = run("eval", "fleet", "--devices", "15", "--hours", "36", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) >= {
        "precision",
        "recall",
        "f1",
        "median_lead_time_h",
        "false_alerts_per_device_day",
        "info_alerts_per_device_day",
        "by_fault_kind",
    }
    assert figures["failures"] > 0
    assert sum(k["failures"] for k in figures["by_fault_kind"].values()) == figures["failures"]
    assert figures["recall"] > 0.5
    assert figures["median_lead_time_h"] > 1.0
