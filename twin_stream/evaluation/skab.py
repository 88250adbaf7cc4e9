"""``twin-stream eval skab``: SKAB's own metrics (F1, false alarm rate, missed alarm rate).

Each ``valve1/*.csv`` file is a run of the SKAB water-circulation testbed with one anomalous
block. The detector sees the eight sensor columns as one device's signals. It first learns
normal behaviour from ``anomaly-free/anomaly-free.csv`` (the benchmark's intended use of that
file); every test file then starts from a copy of that same state. A row counts as an alarm
while the alert policy holds an anomaly alert open, which is what an engineer would see.

Metrics as SKAB defines them, point-wise over the ``anomaly`` labels and summed over files:
F1; FAR = FP / (FP + TN) in %; MAR = FN / (FN + TP) in %.
"""

from __future__ import annotations

import copy
import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.detection.anomaly import AnomalyDetector
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.events import Contribution

__all__ = ["evaluate_skab", "read_skab"]

SENSORS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]


def read_skab(path: Path) -> tuple[list[datetime], list[dict[str, float | None]], list[int]]:
    """Timestamps, sensor rows and anomaly labels (empty for the anomaly-free file)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    # SKAB's timestamps carry no zone; the testbed's local time is taken as UTC.
    stamps = [datetime.fromisoformat(r["datetime"]).replace(tzinfo=UTC) for r in rows]
    values: list[dict[str, float | None]] = [{s: float(r[s]) for s in SENSORS} for r in rows]
    labels = [int(float(r["anomaly"])) for r in rows] if rows and "anomaly" in rows[0] else []
    return stamps, values, labels


def _alarms(
    detector: AnomalyDetector, rows: list[dict[str, float | None]], stamps: list[datetime]
) -> list[int]:
    policy = AlertPolicy("skab", "skab")
    alarms = []
    for seq, (ts, row) in enumerate(zip(stamps, rows, strict=True)):
        result = detector.score_one(row)
        top = [
            Contribution(
                metric=m, value=float(row[m] or 0.0), baseline=result.baselines[m], deviation=z
            )
            for m, z in result.top[:3]
        ]
        policy.on_score(ts, seq, result.score, top)
        alarms.append(int(any(a.kind == "anomaly" for a in policy.open_alerts())))
    return alarms


def evaluate_skab(data: Path, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run every valve1 file and return SKAB's metrics."""
    normal = data / "anomaly-free" / "anomaly-free.csv"
    files = sorted((data / "valve1").glob("*.csv"), key=lambda p: int(p.stem))
    if not files:
        raise FileNotFoundError(f"no SKAB files under {data / 'valve1'}")
    trained = AnomalyDetector()
    if normal.exists():
        stamps, rows, _ = read_skab(normal)
        for row in rows:
            trained.score_one(row)
    tp = fp = tn = fn = 0
    for i, path in enumerate(files):
        stamps, rows, labels = read_skab(path)
        alarms = _alarms(copy.deepcopy(trained), rows, stamps)
        for alarm, label in zip(alarms, labels, strict=True):
            tp += alarm and label
            fp += alarm and not label
            fn += (not alarm) and label
            tn += (not alarm) and not label
        if progress is not None:
            progress((i + 1) / len(files))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "f1": round(f1, 3),
        "far_percent": round(100 * fp / (fp + tn), 2) if fp + tn else 0.0,
        "mar_percent": round(100 * fn / (fn + tp), 2) if fn + tp else 0.0,
        "files": len(files),
        "pretrained_on_anomaly_free": normal.exists(),
        "detector": DETECTOR_VERSION,
    }
