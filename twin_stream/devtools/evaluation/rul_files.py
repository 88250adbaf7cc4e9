"""``eval rul``'s input files, read with every error naming the file, the device and the row:
the histories (:func:`read_histories`, each device's rows in file order) and the true remaining
lives (:func:`read_truth`). The formats are in :mod:`twin_stream.devtools.evaluation.rul`."""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path

from twin_stream.devtools.evaluation.replay import _number, parse_time
from twin_stream.errors import DatasetError

__all__ = ["Row", "read_histories", "read_truth"]

Row = tuple[int, datetime, dict[str, float | None]]


def read_histories(path: Path, time_col: str, device_col: str) -> dict[str, list[Row]]:
    """Every device's rows (file row number, time, signals), in file order; a DatasetError
    naming the file, the device and the row for a bad time or a non-numeric cell."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        if time_col not in header:
            raise DatasetError(f"{path}: no time column {time_col!r} (columns: {header})")
        if device_col not in header:
            raise DatasetError(f"{path}: no device column {device_col!r} (columns: {header})")
        signals = [c for c in header if c not in (time_col, device_col)]
        if not signals:
            raise DatasetError(f"{path}: no signal column (columns: {header})")
        devices: dict[str, list[Row]] = {}
        for row_no, row in enumerate(reader, start=2):  # row 1 is the header
            name = (row.get(device_col) or "").strip()
            if not name:
                raise DatasetError(f"{path}: row {row_no}: no device in column {device_col!r}")
            try:
                ts = parse_time(row.get(time_col) or "")
            except ValueError:
                raise DatasetError(
                    f"{path}: device {name}, row {row_no}: time {row.get(time_col)!r} is not "
                    "ISO 8601 or epoch seconds"
                ) from None
            metrics: dict[str, float | None] = {}
            for column in signals:
                cell = row.get(column)
                if cell is None:
                    raise DatasetError(
                        f"{path}: device {name}, row {row_no}: too few cells (no {column!r})"
                    )
                try:
                    metrics[column] = _number(cell)
                except ValueError:
                    raise DatasetError(
                        f"{path}: device {name}, row {row_no}: {column} = {cell!r} is not a number"
                    ) from None
            devices.setdefault(name, []).append((row_no, ts, metrics))
    if not devices:
        raise DatasetError(f"{path}: no rows")
    return devices


def read_truth(path: Path, devices: list[str]) -> dict[str, float]:
    """Remaining life (hours) after each device's last row: one number per line in device
    order, or a CSV with columns ``device_id,rul_h``. Every device needs one, and every line
    must name a device of the file."""
    with open(path, newline="") as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise DatasetError(f"{path}: empty")
    first = [c.strip() for c in lines[0].split(",")]
    truth: dict[str, float] = {}
    if len(first) >= 2 and "rul_h" in first:
        name_at, value_at = (
            (first.index("device_id") if "device_id" in first else 0),
            first.index("rul_h"),
        )
        for line_no, line in enumerate(lines[1:], start=2):
            cells = [c.strip() for c in line.split(",")]
            try:
                name, value = cells[name_at], float(cells[value_at])
            except (IndexError, ValueError):
                raise DatasetError(
                    f"{path}: line {line_no}: {line!r} is not device_id,rul_h"
                ) from None
            if name not in devices:
                raise DatasetError(f"{path}: line {line_no}: device {name!r} is not in the data")
            truth[name] = value
    else:
        if len(lines) != len(devices):
            raise DatasetError(f"{path}: {len(lines)} values for {len(devices)} devices")
        for line_no, (name, line) in enumerate(zip(devices, lines, strict=True), start=1):
            try:
                truth[name] = float(line.split()[-1])
            except ValueError:
                raise DatasetError(f"{path}: line {line_no}: {line!r} is not a number") from None
    for name, value in truth.items():
        if not math.isfinite(value) or value < 0:
            raise DatasetError(f"{path}: device {name}: remaining life {value} is not >= 0")
    missing = [d for d in devices if d not in truth]
    if missing:
        raise DatasetError(
            f"{path}: no remaining life for device {missing[0]} ({len(missing)} missing)"
        )
    return truth
