"""``twin-stream eval replay``: production's per-device path over any CSV of historical readings.

The file has a time column (ISO 8601, a naive time taken as UTC, or epoch seconds), optionally a
device column (without one, the whole file is one device named after the file's stem), and any
number of signal columns: every other column whose non-empty cells are all numbers. Other
columns are ignored, and so is a ``seq`` column, which is taken as the readings' sequence number
when its cells are whole numbers. An empty (or non-finite) cell is a missing value.

Each device gets one :class:`DeviceMonitor` of the given device type (default ``"replay"``, which
has no failure limits) and sees its rows in file order. The replay writes

* ``OUT/scores.csv``: per row ``ts, device_id, score, warming_up, top_signal``;
* ``OUT/alerts.jsonl``: every alert event (open, updated, resolved) with its explanation;

and returns a summary: ``devices``, ``rows``, ``alerts`` (distinct alerts that paged someone:
warning or critical), ``info_alerts`` (distinct alerts that never paged) and ``first_alert_ts``
per device (when the device's first page went out).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.errors import UNREADABLE_DATASET, DatasetError, map_exceptions

__all__ = ["DEFAULT_TYPE", "ReplayColumns", "parse_time", "replay_csv", "sniff_columns"]

#: A device type with no failure limits: the replay knows nothing about the signals' physics.
DEFAULT_TYPE = "replay"
SEQ_COLUMN = "seq"


def parse_time(text: str) -> datetime:
    """ISO 8601 (naive: UTC) or epoch seconds.

    >>> parse_time("2026-01-05T10:00:00Z").isoformat(), parse_time("0").isoformat()
    ('2026-01-05T10:00:00+00:00', '1970-01-01T00:00:00+00:00')
    """
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        ts = datetime.fromisoformat(text)
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return datetime.fromtimestamp(seconds, tz=UTC)


def _number(text: str) -> float | None:
    """A cell's value: None when empty or not finite; ValueError when not a number."""
    if not text.strip():
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _device_id(name: str) -> str:
    """A valid platform device id for any name (lower case; other characters become '-')."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    slug = slug if slug else "device"
    return (slug if len(slug) >= 2 else f"{slug}-device")[:63]


@dataclass
class ReplayColumns:
    time: str
    device: str | None
    signals: list[str]
    seq: str | None
    rows: int


def sniff_columns(path: Path, time_col: str, device_col: str | None) -> ReplayColumns:
    """One pass over the file: which columns are signals, and how many rows it has."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        if time_col not in header:
            raise DatasetError(f"{path}: no time column {time_col!r} (columns: {header})")
        device = device_col if device_col in header else None
        candidates = [c for c in header if c not in (time_col, device)]
        numeric = dict.fromkeys(candidates, True)
        whole = True
        rows = 0
        for row in reader:
            rows += 1
            for column in candidates:
                if not numeric[column]:
                    continue
                cell = row.get(column) or ""
                try:
                    value = _number(cell)
                except ValueError:
                    numeric[column] = False
                    continue
                if column == SEQ_COLUMN and (value is None or value != int(value)):
                    whole = False
    seq = SEQ_COLUMN if numeric.get(SEQ_COLUMN) and whole else None
    signals = [c for c in candidates if numeric[c] and c != SEQ_COLUMN]
    if not signals:
        raise DatasetError(f"{path}: no numeric signal column")
    return ReplayColumns(time_col, device, signals, seq, rows)


@dataclass
class _Device:
    monitor: DeviceMonitor
    rows: int = 0
    max_score: float = 0.0
    first_alert_ts: datetime | None = None
    #: distinct alerts that paged, and all distinct alerts
    alert_ids: set[str] = field(default_factory=set)
    seen_ids: set[str] = field(default_factory=set)


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with open(path, newline="") as f:
        yield from csv.DictReader(f)


@map_exceptions(UNREADABLE_DATASET, "eval replay")
def replay_csv(
    path: Path,
    out: Path,
    *,
    time_col: str = "ts",
    device_col: str | None = "device_id",
    device_type: str = DEFAULT_TYPE,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Replay ``path`` through one monitor per device; write scores and alerts under ``out``."""
    columns = sniff_columns(path, time_col, device_col)
    out.mkdir(parents=True, exist_ok=True)
    devices: dict[str, _Device] = {}
    every = max(columns.rows // 200, 1)
    with (
        open(out / "scores.csv", "w", newline="") as scores_file,
        open(out / "alerts.jsonl", "w") as alerts_file,
    ):
        scores = csv.writer(scores_file)
        scores.writerow(["ts", "device_id", "score", "warming_up", "top_signal"])
        for i, row in enumerate(_rows(path)):
            name = (row[columns.device] if columns.device else "") or path.stem
            device = devices.get(name)
            if device is None:
                device = devices[name] = _Device(DeviceMonitor(_device_id(name), device_type))
            ts = parse_time(row[columns.time])
            seq = int(float(row[columns.seq])) if columns.seq else device.rows
            metrics = {s: _number(row.get(s) or "") for s in columns.signals}
            output = device.monitor.on_reading(ts, seq, metrics)
            device.rows += 1
            score = output.score.score
            device.max_score = max(device.max_score, score)
            top = output.contributions[0].metric if output.contributions else ""
            scores.writerow(
                [ts.isoformat(), name, f"{score:.6f}", int(output.score.warming_up), top]
            )
            for alert in output.alerts:
                event = alert.model_dump(mode="json")
                event["device_id"] = name  # the name in the file, as in scores.csv
                alerts_file.write(json.dumps(event) + "\n")
                if alert.state != "resolved":
                    device.seen_ids.add(alert.alert_id)
                if alert.pages and alert.alert_id not in device.alert_ids:
                    device.alert_ids.add(alert.alert_id)
                    paged_at = alert.opened_at if alert.state == "open" else alert.ts
                    if device.first_alert_ts is None:
                        device.first_alert_ts = paged_at
            if progress is not None and i % every == 0:
                progress(i / max(columns.rows, 1))
    if progress is not None:
        progress(1.0)
    return {
        "devices": len(devices),
        "rows": sum(d.rows for d in devices.values()),
        "alerts": sum(len(d.alert_ids) for d in devices.values()),
        "info_alerts": sum(len(d.seen_ids - d.alert_ids) for d in devices.values()),
        "first_alert_ts": {
            name: d.first_alert_ts.isoformat() if d.first_alert_ts else None
            for name, d in devices.items()
        },
        "signals": columns.signals,
        "device_type": device_type,
        "detector": DETECTOR_VERSION,
        "scores": str(out / "scores.csv"),
        "alerts_file": str(out / "alerts.jsonl"),
        "per_device": {
            name: {"rows": d.rows, "alerts": len(d.alert_ids), "max_score": round(d.max_score, 6)}
            for name, d in devices.items()
        },
    }
