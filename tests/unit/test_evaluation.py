"""NAB's scoring rules as implemented here, and the eval commands end to end on real data."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin_stream.evaluation.nab_scoring import (
    PROFILES,
    best_threshold,
    normalized_score,
    scaled_sigmoid,
    sweep_rows,
)

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


@pytest.fixture(scope="module")
def datasets() -> Path:
    assert DATASETS.is_dir(), f"benchmark data missing: {DATASETS} (../shared/datasets)"
    return DATASETS


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


def test_eval_nab_writes_results_files_and_scores(datasets: Path, tmp_path: Path) -> None:
    keys = [
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
    ]
    all_windows = json.loads((datasets / "nab/labels/combined_windows.json").read_text())
    data = tmp_path / "data"
    for key in keys:
        (data / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(datasets / "nab/data" / key, data / key)
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({k: all_windows[k] for k in keys}))
    out = tmp_path / "out"
    result = run(
        "eval", "nab", "--data", str(data), "--labels", str(labels), "--out", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores) >= {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert all(-1000 < scores[p]["score"] <= 100 for p in PROFILES)
    written = out / "twinstream/artificialWithAnomaly/twinstream_art_daily_jumpsup.csv"
    with open(written) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    ((start, end),) = all_windows[keys[0]]
    labelled = [r["timestamp"] for r in rows if r["label"] == "1"]
    assert labelled[0] == start.split(".")[0] and labelled[-1] == end.split(".")[0]


def test_eval_skab_reports_its_metrics(datasets: Path, tmp_path: Path) -> None:
    (tmp_path / "valve1").mkdir()
    (tmp_path / "anomaly-free").mkdir()
    shutil.copy(datasets / "skab/anomaly-free/anomaly-free.csv", tmp_path / "anomaly-free")
    for name in ("0.csv", "1.csv"):
        shutil.copy(datasets / "skab/valve1" / name, tmp_path / "valve1")
    result = run("eval", "skab", "--data", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["files"] == 2
    assert 0.0 <= metrics["f1"] <= 1.0
    assert 0.0 <= metrics["far_percent"] <= 100.0 and 0.0 <= metrics["mar_percent"] <= 100.0


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
    }
    assert figures["failures"] > 0
    assert figures["recall"] > 0.5
    assert figures["median_lead_time_h"] > 1.0
