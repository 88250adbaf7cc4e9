"""``twin-stream eval nab``: production's per-device path on NAB-format data, scored by NAB's rules.

Every file is one device: a fresh :class:`DeviceMonitor` of device type ``"nab"`` (no failure
limits) sees the file's rows in order as the single signal ``{"value": v}``, stamped with the
file's timestamps. A row's ``anomaly_score`` is the monitor's score for that reading, exactly what
a worker would publish; nothing is post-processed for NAB. The same parameters serve every file.
Results are written in NAB's results layout (``OUT/twinstream/<category>/twinstream_<file>.csv``)
so NAB's own scorer can read them too.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin_stream.devtools.evaluation.nab_scoring import (
    PROFILES,
    Profile,
    ScoredRow,
    best_threshold,
    normalized_score,
    raw_score_at,
    sweep_rows,
)
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.errors import UNREADABLE_DATASET, DatasetError, map_exceptions

__all__ = ["DEVICE_TYPE", "NabFile", "evaluate_nab", "load_corpus", "parse_nab_ts", "score_file"]

DETECTOR_NAME = "twinstream"
#: NAB's series are not medical devices: a device type without failure limits.
DEVICE_TYPE = "nab"


@dataclass
class NabFile:
    key: str  # "<category>/<file>.csv", as in NAB's label files
    timestamps: list[str]
    values: list[float]
    windows: list[tuple[int, int]]  # inclusive row indices


def parse_nab_ts(text: str) -> datetime:
    """NAB's ``YYYY-MM-DD HH:MM:SS`` (no zone: taken as UTC)."""
    ts = datetime.fromisoformat(text.strip())
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def load_corpus(data: Path, labels: Path) -> list[NabFile]:
    """Every CSV under ``data`` that ``labels`` (combined_windows.json) knows."""
    windows_by_key: dict[str, list[list[str]]] = json.loads(labels.read_text())
    corpus = []
    for key in sorted(windows_by_key):
        path = data / key
        if not path.exists():
            continue
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        timestamps = [r["timestamp"] for r in rows]
        index = {ts: i for i, ts in reversed(list(enumerate(timestamps)))}  # first occurrence
        windows = []
        for start, end in windows_by_key[key]:
            start_ts, end_ts = start.split(".")[0], end.split(".")[0]
            windows.append((index[start_ts], index[end_ts]))
        corpus.append(NabFile(key, timestamps, [float(r["value"]) for r in rows], windows))
    if not corpus:
        raise DatasetError(f"no file of {labels} found under {data}")
    return corpus


def score_file(nab_file: NabFile) -> list[float]:
    """Each row's anomaly score from a fresh monitor, as production computes it."""
    monitor = DeviceMonitor(DEVICE_TYPE, DEVICE_TYPE)
    return [
        monitor.on_reading(parse_nab_ts(ts), seq, {"value": value}).score.score
        for seq, (ts, value) in enumerate(zip(nab_file.timestamps, nab_file.values, strict=True))
    ]


@map_exceptions(UNREADABLE_DATASET, "eval nab")
def evaluate_nab(
    data: Path,
    labels: Path,
    out: Path,
    progress: Callable[[float], None] | None = None,
    *,
    cv: bool = False,
) -> dict[str, Any]:
    """Run, write NAB results files, and return the normalised score per profile.

    With ``cv``, also leave one category out: for each category (the folder of a file), the
    threshold is chosen on the other categories' files and scores the held-out one; the pooled
    cross-validated score sums the held-out raw scores of every fold and normalises them
    against the null and perfect detectors of the whole corpus, as NAB normalises a corpus.
    The detector runs once per file (nothing in it is fitted to NAB): only the threshold is
    chosen per fold."""
    corpus = load_corpus(data, labels)
    scored: list[tuple[NabFile, list[float]]] = []
    for i, nab_file in enumerate(corpus):
        scores = score_file(nab_file)
        scored.append((nab_file, scores))
        _write_results(out, nab_file, scores)
        if progress is not None:
            progress((i + 1) / len(corpus))

    results: dict[str, Any] = {"detector": DETECTOR_VERSION, "files": len(corpus)}
    for name, profile in PROFILES.items():
        files: list[list[ScoredRow]] = [
            sweep_rows(f.key, scores, f.windows, profile) for f, scores in scored
        ]
        windows = {r.window for rows in files for r in rows if r.window is not None}
        threshold, raw = best_threshold(files, windows, profile)
        results[name] = {
            "score": round(normalized_score(raw, len(windows), profile), 2),
            "threshold": threshold,
            "windows": len(windows),
        }
        if cv:
            results[name]["cross_validated"] = _leave_one_category_out(scored, files, profile)
    return results


def _leave_one_category_out(
    scored: list[tuple[NabFile, list[float]]],
    files: list[list[ScoredRow]],
    profile: Profile,
) -> dict[str, Any]:
    categories = sorted({f.key.split("/")[0] for f, _ in scored})
    folds: dict[str, Any] = {}
    pooled, all_windows = 0.0, 0
    for held in categories:
        inside = [
            rows for (f, _), rows in zip(scored, files, strict=True) if f.key.startswith(held)
        ]
        rest = [
            rows for (f, _), rows in zip(scored, files, strict=True) if not f.key.startswith(held)
        ]
        rest_windows = {r.window for rows in rest for r in rows if r.window is not None}
        held_windows = {r.window for rows in inside for r in rows if r.window is not None}
        threshold, _ = best_threshold(rest, rest_windows, profile)
        raw = raw_score_at(inside, held_windows, threshold, profile)
        pooled += raw
        all_windows += len(held_windows)
        folds[held] = {
            "threshold": threshold,
            "windows": len(held_windows),
            "raw": round(raw, 3),
            "score": round(normalized_score(raw, len(held_windows), profile), 2)
            if held_windows
            else None,
        }
    return {"score": round(normalized_score(pooled, all_windows, profile), 2), "folds": folds}


def _write_results(out: Path, nab_file: NabFile, scores: list[float]) -> None:
    category, filename = nab_file.key.split("/", 1)
    target = out / DETECTOR_NAME / category / f"{DETECTOR_NAME}_{filename}"
    target.parent.mkdir(parents=True, exist_ok=True)
    in_window: set[int] = set()
    for first, last in nab_file.windows:
        in_window.update(range(first, last + 1))
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value", "anomaly_score", "label"])
        for i, (ts, value, score) in enumerate(
            zip(nab_file.timestamps, nab_file.values, scores, strict=True)
        ):
            writer.writerow([ts, value, f"{score:.6f}", int(i in in_window)])
