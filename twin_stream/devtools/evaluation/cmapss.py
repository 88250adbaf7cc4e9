"""``twin-stream eval cmapss-csv``: NASA's C-MAPSS files as the CSVs ``eval rul`` reads.

C-MAPSS (Saxena, Goebel, Simon, Eklund, PHM08) gives whitespace-separated rows: unit, cycle, 3
operating settings and 21 sensors; a test file's engines stop before they fail and its RUL file
gives, in unit order, each engine's remaining life after its last cycle. This writes

* ``OUT/odd.csv`` and ``OUT/even.csv``: the odd and the even units, one row per cycle with
  ``ts`` (one cycle = one hour from 2000-01-01T00:00Z: cycle c at c hours), ``device_id``
  (``engine-001``...), ``setting1``-``setting3`` and ``s1``-``s21``;
* ``OUT/odd-truth.csv`` and ``OUT/even-truth.csv``: ``device_id,rul_h``, each engine's true
  remaining life in hours after its last row,

so that one half trains (with ``--train-truth``: its histories stop before failure too) and the
other is scored, and back.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from twin_stream.errors import UNREADABLE_DATASET, DatasetError, map_exceptions

__all__ = ["CMAPSS_COLUMNS", "EPOCH", "convert_cmapss"]

EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
CMAPSS_COLUMNS: Final = [f"setting{i}" for i in range(1, 4)] + [f"s{i}" for i in range(1, 22)]


def _find(data: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (data / name).is_file():
            return data / name
    raise DatasetError(f"{data}: none of {', '.join(names)}")


@map_exceptions(UNREADABLE_DATASET, "eval cmapss-csv")
def convert_cmapss(data: Path, out: Path, subset: str = "FD003") -> dict[str, Any]:
    """Write the odd/even CSVs and truth files of ``data/test_<subset>.txt``."""
    rows_path = _find(data, (f"test_{subset}.txt",))
    truth_path = _find(data, (f"RUL_{subset}.txt",))
    units: dict[int, list[list[str]]] = {}
    with open(rows_path) as f:
        for line_no, line in enumerate(f, start=1):
            cells = line.split()
            if not cells:
                continue
            if len(cells) != 2 + len(CMAPSS_COLUMNS):
                raise DatasetError(
                    f"{rows_path}: row {line_no} has {len(cells)} values, "
                    f"expected {2 + len(CMAPSS_COLUMNS)}"
                )
            try:
                unit, cycle = int(cells[0]), int(float(cells[1]))
                [float(c) for c in cells[2:]]
            except ValueError as e:
                raise DatasetError(f"{rows_path}: row {line_no}: {e}") from e
            units.setdefault(unit, []).append([str(cycle), *cells[2:]])
    with open(truth_path) as f:
        truths = [line.strip() for line in f if line.strip()]
    order = sorted(units)
    if len(truths) != len(order):
        raise DatasetError(
            f"{truth_path}: {len(truths)} lines for {len(order)} units in {rows_path.name}"
        )
    for line_no, value in enumerate(truths, start=1):
        try:
            float(value)
        except ValueError as e:
            raise DatasetError(f"{truth_path}: line {line_no}: {value!r} is not a number") from e
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}
    for half, parity in (("odd", 1), ("even", 0)):
        chosen = [(u, t) for u, t in zip(order, truths, strict=True) if u % 2 == parity]
        with open(out / f"{half}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ts", "device_id", *CMAPSS_COLUMNS])
            for unit, _ in chosen:
                for cycle_text, *values in units[unit]:
                    ts = EPOCH + timedelta(hours=int(cycle_text))
                    w.writerow(
                        [ts.isoformat().replace("+00:00", "Z"), f"engine-{unit:03d}", *values]
                    )
        with open(out / f"{half}-truth.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["device_id", "rul_h"])
            for unit, truth in chosen:
                w.writerow([f"engine-{unit:03d}", truth])
        written[half] = {
            "devices": len(chosen),
            "rows": sum(len(units[u]) for u, _ in chosen),
            "csv": str(out / f"{half}.csv"),
            "truth": str(out / f"{half}-truth.csv"),
        }
    return written
