"""``eval skab``: SKAB's protocol (400 training rows, pooled test rows) on SKAB-format files
generated here."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from twin_stream.devtools.evaluation.skab import (
    SENSORS,
    TRAIN_ROWS,
    Confusion,
    find_files,
    run_file,
)

HEADER = ["datetime", *SENSORS, "anomaly", "changepoint"]
LEVELS = [0.03, 0.04, 2.0, 0.3, 70.0, 28.0, 230.0, 32.0]  # roughly SKAB's
ROWS = 800
ANOMALY = range(600, 700)


def write_skab(path: Path, seed: int, anomaly: bool = True) -> None:
    """A SKAB-format file: normal noise, then (if ``anomaly``) a +10 sd shift of four sensors."""
    rng = random.Random(seed)
    t0 = datetime(2020, 3, 9, 10, 14, 33)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(HEADER)
        for i in range(ROWS):
            faulty = anomaly and i in ANOMALY
            values = [
                level + level * 0.01 * (rng.gauss(0, 1) + (10 if faulty and k < 4 else 0))
                for k, level in enumerate(LEVELS)
            ]
            writer.writerow(
                [(t0 + timedelta(seconds=i)).isoformat(sep=" ")]
                + [f"{v:.5f}" for v in values]
                + [f"{float(faulty):.1f}", f"{float(i == ANOMALY.start):.1f}"]
            )


@pytest.fixture
def skab_dir(tmp_path: Path) -> Path:
    write_skab(tmp_path / "valve1" / "0.csv", 1)
    write_skab(tmp_path / "valve1" / "10.csv", 2)
    write_skab(tmp_path / "other" / "deep" / "2.csv", 3)
    write_skab(tmp_path / "anomaly-free" / "anomaly-free.csv", 4, anomaly=False)
    write_skab(tmp_path / "other" / "anomaly-free.csv", 5, anomaly=False)
    return tmp_path


def test_files_are_found_recursively_without_anomaly_free_ones(skab_dir: Path) -> None:
    assert [p.relative_to(skab_dir).as_posix() for p in find_files(skab_dir)] == [
        "other/deep/2.csv",
        "valve1/0.csv",
        "valve1/10.csv",
    ]


def test_metrics_are_skabs() -> None:
    c = Confusion()
    c.add([True, True, False, False, True], [1, 0, 1, 0, 0])
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 2, 1, 1)
    assert c.metrics() == {"f1": 0.4, "far_percent": 66.67, "mar_percent": 50.0}


def test_only_rows_after_training_are_scored(skab_dir: Path) -> None:
    alarms, labels = run_file(skab_dir / "valve1" / "0.csv")
    assert len(alarms) == len(labels) == ROWS - TRAIN_ROWS
    assert sum(labels) == len(ANOMALY)


def test_eval_skab_reports_pooled_metrics(skab_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twin_stream", "eval", "skab", "--data", str(skab_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {"f1", "far_percent", "mar_percent", "files", "test_rows", "detector"}
    assert metrics["files"] == 3
    assert metrics["test_rows"] == 3 * (ROWS - TRAIN_ROWS)
    assert 0.0 <= metrics["f1"] <= 1.0
    assert 0.0 <= metrics["far_percent"] <= 100.0 and 0.0 <= metrics["mar_percent"] <= 100.0
    assert set(metrics["folders"]) == {"other/deep", "valve1"}
    assert metrics["folders"]["valve1"]["files"] == 2
    # a +10 sd shift of half the sensors for 100 rows: some of it is caught
    assert metrics["mar_percent"] < 100.0
