"""``twin-stream eval skab``: SKAB's published protocol and metrics, on production's path.

``DIR`` is any folder of SKAB-format files (``;``-separated, a ``datetime`` column, the eight
sensor columns, ``anomaly`` and ``changepoint`` labels), searched recursively; files inside an
``anomaly-free`` folder, or named ``anomaly-free``, are left out (they have no anomaly to find).

For each file, as SKAB's benchmark does: a fresh :class:`DeviceMonitor` (device type ``"skab"``:
no failure limits) sees every row in order, the eight sensors as one device's signals. The first
:data:`TRAIN_ROWS` rows are the training part: the monitor learns from them and no alarm counts.
Every later row is a test row, scored by :func:`alarm_now`: an alarm while the monitor's policy
holds an anomaly alert open, which is what an engineer would see.

Metrics as SKAB defines them, point-wise over the ``anomaly`` labels of the test rows pooled
over all files: F1; FAR = FP / (FP + TN) in %; MAR = FN / (FN + TP) in %.

With ``cv`` (``eval skab --cv``), the files are also split in two (:func:`split_halves`: each
folder's files in natural order, the first half and the second half; valve1: 0-7 and 8-15) and
each half is scored on its own, plus both pooled. What is fitted where (:data:`FITTED`): per
file, on its own first 400 rows, the monitor learns its baselines, its streaming PCA and its
healthy reference (SKAB's protocol); no parameter is chosen on SKAB files (the detector's and the
alert policy's parameters are the one set of ``params.py``, the alarm rule is fixed), so there is
nothing to tune on one half: each half's figure is already a held-out figure, and the pooled one
equals the in-sample figure.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.errors import UNREADABLE_DATASET, DatasetError, map_exceptions

__all__ = [
    "DEVICE_TYPE",
    "SENSORS",
    "TRAIN_ROWS",
    "Confusion",
    "alarm_now",
    "evaluate_skab",
    "find_files",
    "read_skab",
    "run_file",
    "split_halves",
]

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
#: SKAB's protocol: the first 400 rows of each file are its training part.
TRAIN_ROWS = 400
#: The testbed is no medical device: a device type without failure limits.
DEVICE_TYPE = "skab"
#: What ``eval skab --cv`` reports as fitted where (see the module docstring).
FITTED = {
    "per_file_on_its_first_400_rows": [
        "signal baselines",
        "streaming PCA (T2 and Q)",
        "anomaly likelihood",
        "healthy reference",
    ],
    "chosen_on_skab_files": [],
}


def alarm_now(monitor: DeviceMonitor) -> bool:
    """Whether a row counts as an alarm: an anomaly alert of the monitor is open right now.

    Any severity counts (a ``skab`` device has no failure limits, so its anomaly alerts are
    ``info``); this is the alert an engineer would see open on the device.
    """
    return any(alert.kind == "anomaly" for alert in monitor.open_alerts())


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, alarms: list[bool], labels: list[int]) -> None:
        for alarm, label in zip(alarms, labels, strict=True):
            self.tp += alarm and label == 1
            self.fp += alarm and label == 0
            self.fn += (not alarm) and label == 1
            self.tn += (not alarm) and label == 0

    def __iadd__(self, other: Confusion) -> Confusion:
        self.tp, self.fp = self.tp + other.tp, self.fp + other.fp
        self.tn, self.fn = self.tn + other.tn, self.fn + other.fn
        return self

    @property
    def rows(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def metrics(self) -> dict[str, float]:
        """SKAB's F1, FAR and MAR (both in %)."""
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        negatives, positives = self.fp + self.tn, self.fn + self.tp
        return {
            "f1": round(f1, 3),
            "far_percent": round(100 * self.fp / negatives, 2) if negatives else 0.0,
            "mar_percent": round(100 * self.fn / positives, 2) if positives else 0.0,
        }


def read_skab(path: Path) -> tuple[list[datetime], list[dict[str, float | None]], list[int]]:
    """Timestamps, sensor rows and anomaly labels (empty when the file has none)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    # SKAB's timestamps carry no zone; the testbed's local time is taken as UTC.
    stamps = [datetime.fromisoformat(r["datetime"]).replace(tzinfo=UTC) for r in rows]
    values: list[dict[str, float | None]] = [
        {s: float(r[s]) if r.get(s) not in (None, "") else None for s in SENSORS} for r in rows
    ]
    labels = [int(float(r["anomaly"])) for r in rows] if rows and "anomaly" in rows[0] else []
    return stamps, values, labels


def find_files(data: Path) -> list[Path]:
    """Every SKAB file under ``data``, anomaly-free ones left out, in a stable order."""
    files = [
        p
        for p in data.rglob("*.csv")
        if p.stem != "anomaly-free" and "anomaly-free" not in p.relative_to(data).parts[:-1]
    ]
    return sorted(files, key=lambda p: _natural(p.relative_to(data)))


def _natural(rel: Path) -> tuple[tuple[int, int | str], ...]:
    """Folder names, then file names, with numbers in number order (2.csv before 10.csv)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in rel.with_suffix("").parts
    )


def run_file(path: Path) -> tuple[list[bool], list[int]]:
    """The alarms and labels of the test rows of one file (a fresh monitor sees every row)."""
    stamps, rows, labels = read_skab(path)
    if len(labels) != len(rows):
        raise DatasetError(f"{path}: no 'anomaly' column")
    monitor = DeviceMonitor(DEVICE_TYPE, DEVICE_TYPE)
    alarms = []
    for seq, (ts, row) in enumerate(zip(stamps, rows, strict=True)):
        monitor.on_reading(ts, seq, row)
        if seq >= TRAIN_ROWS:
            alarms.append(alarm_now(monitor))
    return alarms, labels[TRAIN_ROWS:]


def split_halves(data: Path, files: list[Path]) -> dict[str, list[Path]]:
    """Two halves of ``files`` (as :func:`find_files` orders them): in each folder, its first
    ``ceil(n / 2)`` files and the rest. Each half is named by its folders and file names
    (valve1's 16 files: ``"valve1/0-7"`` and ``"valve1/8-15"``)."""
    by_folder: dict[str, list[Path]] = {}
    for path in files:
        by_folder.setdefault(path.parent.relative_to(data).as_posix(), []).append(path)
    halves: list[list[Path]] = [[], []]
    names: list[list[str]] = [[], []]
    for folder, paths in by_folder.items():
        cut = (len(paths) + 1) // 2
        for k, part in enumerate((paths[:cut], paths[cut:])):
            if part:
                halves[k] += part
                first, last = part[0].stem, part[-1].stem
                names[k].append(
                    f"{folder}/{first}" if first == last else f"{folder}/{first}-{last}"
                )
    return {",".join(n): h for n, h in zip(names, halves, strict=True) if h}


@map_exceptions(UNREADABLE_DATASET, "eval skab")
def evaluate_skab(
    data: Path, progress: Callable[[float], None] | None = None, *, cv: bool = False
) -> dict[str, Any]:
    """Run every file under ``data`` and return SKAB's metrics, pooled and per folder; with
    ``cv``, also per half of the files (:func:`split_halves`) and both halves pooled."""
    files = find_files(data)
    if not files:
        raise DatasetError(f"no SKAB files under {data} (anomaly-free ones left out)")
    by_file: dict[Path, Confusion] = {}
    for i, path in enumerate(files):
        confusion = Confusion()
        confusion.add(*run_file(path))
        by_file[path] = confusion
        if progress is not None:
            progress((i + 1) / len(files))
    pooled = _pool(by_file.values())
    by_folder: dict[str, list[Confusion]] = {}
    for path, confusion in by_file.items():
        by_folder.setdefault(path.parent.relative_to(data).as_posix(), []).append(confusion)
    result: dict[str, Any] = {
        **pooled.metrics(),
        "files": len(files),
        "test_rows": pooled.rows,
        "train_rows_per_file": TRAIN_ROWS,
        "detector": DETECTOR_VERSION,
        "folders": {
            folder: {**_pool(cs).metrics(), "files": len(cs), "test_rows": _pool(cs).rows}
            for folder, cs in sorted(by_folder.items())
        },
    }
    if cv:
        halves = split_halves(data, files)
        held = {name: _pool(by_file[p] for p in paths) for name, paths in halves.items()}
        both = _pool(held.values())
        result["cross_validated"] = {
            **both.metrics(),
            "test_rows": both.rows,
            "split": "each folder's files in natural order: first half, second half",
            "fitted": FITTED,
            "halves": {
                name: {
                    **c.metrics(),
                    "files": [p.relative_to(data).as_posix() for p in halves[name]],
                    "test_rows": c.rows,
                }
                for name, c in held.items()
            },
        }
    return result


def _pool(confusions: Iterable[Confusion]) -> Confusion:
    total = Confusion()
    for c in confusions:
        total += c
    return total
