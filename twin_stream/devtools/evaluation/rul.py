"""``twin-stream eval rul``: remaining useful life learned from one set of histories, scored on
another.

Both files are CSVs like ``eval replay``'s: a time column (ISO 8601, naive = UTC, or epoch
seconds), a device column, and signal columns; here *every* other column must be numeric (an
empty cell is a missing value), and a cell that is not is an error naming the file, the device
and the row: nothing is dropped silently. Each device's rows are taken in file order.

* **TRAIN**: each device's history ends in a failure: at its last row, or, with
  ``train_truth``, that many hours after it (histories that stop before failure, as C-MAPSS's
  test engines do). Every device is replayed through its own
  :class:`~twin_stream.domain.detection.health.HealthMonitor`, and its health-index history
  and failure time teach one :class:`~twin_stream.domain.detection.rul.FleetModel`.
* **TEST**: each device is replayed the same way; at its last row the fleet model predicts its
  remaining useful life (hours; the model's estimate at the last history point, less the hours
  since it). The first row at which the health stage reaches 1 (warning) is when the unit was
  paged.

With ``truth`` (the true RUL after each TEST device's last row: one number per line in device
order, or a CSV ``device_id,rul_h``), it scores the usual C-MAPSS protocol: the RMSE of the RUL
at the last row, truth and prediction both capped at ``cap`` hours (125: a healthy unit's RUL is
not knowable from its sensors), NASA's asymmetric score (``exp(-d/13) - 1`` for d < 0,
``exp(d/10) - 1`` otherwise, d = predicted - true, summed over units), and the paging figures:
units paged before the end of their record, units paged while more than ``early_h`` hours
remained (the failure is at the last row + its true RUL), and the median lead (hours from the
first page to the failure).

The per-device step is :func:`step` (one call per reading): the one place to swap in
:class:`~twin_stream.domain.monitor.DeviceMonitor`.
"""

from __future__ import annotations

import csv
import html
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from twin_stream.devtools.evaluation.replay import DEFAULT_TYPE, _device_id, _number, parse_time
from twin_stream.domain.detection.health import HealthMonitor, HealthReading
from twin_stream.domain.detection.params import HealthParams
from twin_stream.domain.detection.rul import FleetModel, RulEstimate
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.errors import UNREADABLE_DATASET, ConfigError, DatasetError, map_exceptions

__all__ = [
    "DEFAULT_CAP_H",
    "Unit",
    "evaluate_rul",
    "nasa_score",
    "read_histories",
    "read_truth",
    "step",
    "write_plot",
]

#: The usual C-MAPSS protocol caps the remaining useful life at 125 cycles (here hours).
DEFAULT_CAP_H: Final = 125.0
#: A unit paged while more than this many hours remained is an early (false) page.
DEFAULT_EARLY_H: Final = 150.0
#: Units whose record ends within this many hours of failure are also counted apart.
NEAR_FAILURE_H: Final = 50.0

Row = tuple[int, datetime, dict[str, float | None]]


@dataclass
class Unit:
    """One device's replay: its monitor (production's per-device path) and what the evaluation
    needs of it."""

    name: str
    monitor: DeviceMonitor
    rows: int = 0
    first_row: int = 0
    last_row: int = 0
    last_ts: datetime | None = None
    first_page_ts: datetime | None = None
    max_stage: int = 0
    trace: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def health(self) -> HealthMonitor:
        return self.monitor.detector.health


def step(
    unit: Unit, ts: datetime, metrics: dict[str, float | None], fleet: FleetModel | None = None
) -> HealthReading:
    """The per-device path, one reading: :meth:`DeviceMonitor.on_reading`, what the worker runs
    (the anomaly detector, the health index, the fleet's RUL and the alert policy). The unit is
    paged at the first alert event that pages (a degradation or a sustained anomaly)."""
    out = unit.monitor.on_reading(ts, unit.rows, metrics, fleet=fleet)
    if unit.first_page_ts is None and any(alert.pages for alert in out.alerts):
        unit.first_page_ts = ts
    assert out.health is not None
    return out.health


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


def _replay(
    path: Path,
    devices: dict[str, list[Row]],
    params: HealthParams | None,
    tick: Callable[[], None],
    keep_trace: bool = False,
    fleet: FleetModel | None = None,
) -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    for name, rows in devices.items():
        monitor = DeviceMonitor(_device_id(name), DEFAULT_TYPE)
        if params is not None:
            monitor.detector.health = HealthMonitor(params)
        unit = units[name] = Unit(name, monitor, first_row=rows[0][0])
        for row_no, ts, metrics in rows:
            reading = step(unit, ts, metrics, fleet)
            unit.rows += 1
            unit.last_row, unit.last_ts = row_no, ts
            unit.max_stage = max(unit.max_stage, reading.stage)
            if keep_trace and reading.summarised and reading.index is not None:
                unit.trace.append((unit.health.hours_at(ts) or 0.0, reading.index, reading.stage))
            tick()
        if not unit.health.reference_frozen:
            p = unit.health.params
            raise DatasetError(
                f"{path}: device {name}, rows {unit.first_row}-{unit.last_row}: {unit.rows} rows "
                f"do not complete its learning period ({p.reference_readings} readings or "
                f"{p.reference_hours:g} h of its clock, and at least {p.min_reference} readings)"
            )
    return units


def estimate_at_end(unit: Unit, fleet: FleetModel) -> RulEstimate | None:
    """The fleet model's RUL at the unit's last row (its estimate at the last history point,
    less the hours since that point)."""
    history = unit.health.history()
    estimate = fleet.predict(history)
    if estimate is None or unit.last_ts is None:
        return None
    since = (unit.health.hours_at(unit.last_ts) or 0.0) - history[-1][0]
    return RulEstimate(
        max(estimate.rul_h - since, 0.0),
        max(estimate.low_h - since, 0.0),
        max(estimate.high_h - since, 0.0),
    )


def nasa_score(d: float) -> float:
    """NASA's (PHM08) asymmetric cost of one prediction error d = predicted - true: a late
    prediction (d > 0) costs more than an early one."""
    return math.exp(-d / 13.0) - 1.0 if d < 0 else math.exp(d / 10.0) - 1.0


def _count_rows(path: Path) -> int:
    with open(path, newline="") as f:
        return max(sum(1 for _ in f) - 1, 1)


def train_fleet(
    train: Path,
    devices: dict[str, list[Row]],
    truth: dict[str, float] | None,
    params: HealthParams | None,
    tick: Callable[[], None],
    fleet: FleetModel | None = None,
) -> tuple[FleetModel, dict[str, Unit]]:
    """Replay TRAIN and teach a fleet model its failures."""
    units = _replay(train, devices, params, tick)
    model = fleet if fleet is not None else FleetModel()
    for name, unit in units.items():
        assert unit.last_ts is not None
        end = unit.health.hours_at(unit.last_ts) or 0.0
        model.learn(unit.health.history(), end + (truth[name] if truth else 0.0))
    return model, units


def score(
    units: dict[str, Unit],
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float],
    cap: float,
    early_h: float,
) -> dict[str, Any]:
    """RMSE, NASA's score and the paging figures against the true RUL after each last row."""
    errors = []
    for name, estimate in predictions.items():
        if estimate is None:
            continue
        true = truth[name]
        predicted = estimate.rul_h
        if cap > 0:
            true, predicted = min(true, cap), min(predicted, cap)
        errors.append(predicted - true)
    leads = []
    early = []
    for name, unit in units.items():
        if unit.first_page_ts is None or unit.last_ts is None:
            continue
        lead = (unit.last_ts - unit.first_page_ts).total_seconds() / 3600.0 + truth[name]
        leads.append(lead)
        if lead > early_h:
            early.append(name)
    n = len(units)
    # records that run (nearly) to failure: what "paged before failure" means on
    # run-to-failure data, where a record that stops early cannot show its degradation yet
    near = [name for name in units if truth[name] <= NEAR_FAILURE_H]
    near_paged = [name for name in near if units[name].first_page_ts is not None]
    return {
        "scored": len(errors),
        "rmse_h": round(math.sqrt(sum(e * e for e in errors) / len(errors)), 3) if errors else None,
        "nasa_score": round(sum(nasa_score(e) for e in errors), 3),
        "mean_error_h": round(sum(errors) / len(errors), 3) if errors else None,
        "cap_h": cap,
        "units": n,
        "paged": len(leads),
        "paged_share": round(len(leads) / n, 4),
        "paged_early": len(early),
        "paged_early_share": round(len(early) / n, 4),
        "early_h": early_h,
        "early_units": early,
        "median_lead_h": round(statistics.median(leads), 3) if leads else None,
        "near_failure_h": NEAR_FAILURE_H,
        "near_failure_units": len(near),
        "near_failure_paged": len(near_paged),
    }


@map_exceptions(UNREADABLE_DATASET, "eval rul")
def evaluate_rul(
    train: Path,
    test: Path,
    *,
    time_col: str = "ts",
    device_col: str = "device_id",
    train_truth: Path | None = None,
    truth: Path | None = None,
    cap: float = DEFAULT_CAP_H,
    early_h: float = DEFAULT_EARLY_H,
    params: HealthParams | None = None,
    fleet: FleetModel | None = None,
    progress: Callable[[float], None] | None = None,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Learn from TRAIN, replay TEST, predict each TEST device's RUL at its last row, and
    score it against ``truth`` when given (see the module docstring)."""
    total = _count_rows(train) + _count_rows(test)
    done = [0]
    every = max(total // 200, 1)

    def tick() -> None:
        done[0] += 1
        if progress is not None and done[0] % every == 0:
            progress(min(done[0] / total, 1.0))

    train_devices = read_histories(train, time_col, device_col)
    test_devices = read_histories(test, time_col, device_col)
    lives = read_truth(train_truth, list(train_devices)) if train_truth else None
    truths = read_truth(truth, list(test_devices)) if truth else None
    model, _ = train_fleet(train, train_devices, lives, params, tick, fleet)
    units = _replay(test, test_devices, params, tick, keep_trace=plot is not None, fleet=model)
    if progress is not None:
        progress(1.0)
    predictions = {name: estimate_at_end(unit, model) for name, unit in units.items()}
    result: dict[str, Any] = {
        "train_devices": len(train_devices),
        "failures_learned": model.failures,
        "test_devices": len(test_devices),
        "predictions": {
            name: None
            if e is None
            else {
                "rul_h": round(e.rul_h, 3),
                "low_h": round(e.low_h, 3),
                "high_h": round(e.high_h, 3),
            }
            for name, e in predictions.items()
        },
        "stages": {name: unit.max_stage for name, unit in units.items()},
    }
    if truths is not None:
        result["score"] = score(units, predictions, truths, cap, early_h)
    else:
        result["paged"] = sum(1 for u in units.values() if u.first_page_ts is not None)
    if plot is not None:
        write_plot(plot, predictions, truths, cap, units)
        result["plot"] = str(plot)
    return result


# -- the plot ---------------------------------------------------------------------------------


def write_plot(
    path: Path,
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
    units: dict[str, Unit] | None = None,
) -> None:
    """Predicted (with its interval) against true RUL per device: a PNG through matplotlib
    when it is installed, otherwise (``.html`` or ``.svg``) a self-contained SVG."""
    names = list(predictions)
    if truth is not None:
        names.sort(key=lambda n: truth[n])
    suffix = path.suffix.lower()
    if suffix == ".png":
        _plot_png(path, names, predictions, truth, cap)
        return
    if suffix not in (".html", ".htm", ".svg"):
        raise ConfigError(f"--plot {path}: the file must end in .png, .html or .svg")
    svg = _svg(names, predictions, truth, cap)
    if suffix == ".svg":
        path.write_text(svg)
        return
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>RUL: predicted against true"
        "</title></head><body style='font-family:sans-serif'><h3>Remaining useful life at each "
        f"device's last row (hours{', capped at ' + format(cap, 'g') if cap > 0 else ''})</h3>"
        f"{svg}<p>dots: predicted (bar: interval); crosses: true. Devices in order of true RUL."
        "</p></body></html>\n"
    )


def _points(
    names: list[str],
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
) -> Iterator[tuple[int, str, RulEstimate | None, float | None]]:
    def c(x: float) -> float:
        return min(x, cap) if cap > 0 else x

    for k, name in enumerate(names):
        e = predictions[name]
        capped = None if e is None else RulEstimate(c(e.rul_h), c(e.low_h), c(e.high_h))
        yield k, name, capped, None if truth is None else c(truth[name])


def _svg(
    names: list[str],
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
) -> str:
    width, height, left, bottom, top = max(600, 12 * len(names) + 80), 420, 60, 60, 20
    points = list(_points(names, predictions, truth, cap))
    top_value = max(
        [1.0]
        + [e.high_h for _, _, e, _ in points if e is not None]
        + [t for _, _, _, t in points if t is not None]
    )
    plot_w, plot_h = width - left - 20, height - top - bottom

    def x(k: int) -> float:
        return left + (k + 0.5) * plot_w / max(len(names), 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>",
        f"<line x1='{left}' y1='{y(0):.1f}' x2='{width - 20}' y2='{y(0):.1f}' stroke='black'/>",
        f"<line x1='{left}' y1='{top}' x2='{left}' y2='{y(0):.1f}' stroke='black'/>",
    ]
    for tick in range(6):
        v = top_value * tick / 5
        parts.append(
            f"<text x='{left - 6}' y='{y(v) + 4:.1f}' font-size='11' text-anchor='end'>"
            f"{v:.0f}</text>"
        )
    for k, name, e, t in points:
        label = html.escape(name)
        if e is not None:
            parts.append(
                f"<line x1='{x(k):.1f}' y1='{y(e.low_h):.1f}' x2='{x(k):.1f}' "
                f"y2='{y(e.high_h):.1f}' stroke='#7aa6d6'/>"
                f"<circle cx='{x(k):.1f}' cy='{y(e.rul_h):.1f}' r='3' fill='#1f5fa8'>"
                f"<title>{label}: predicted {e.rul_h:.1f} h ({e.low_h:.1f}-{e.high_h:.1f})"
                "</title></circle>"
            )
        if t is not None:
            parts.append(
                f"<text x='{x(k):.1f}' y='{y(t) + 4:.1f}' font-size='11' fill='#c0392b' "
                f"text-anchor='middle'>×<title>{label}: true {t:.1f} h</title></text>"
            )
    parts.append(
        f"<text x='{left + plot_w / 2:.0f}' y='{height - 15}' font-size='12' "
        "text-anchor='middle'>devices (by true RUL)</text>"
        f"<text x='15' y='{top + plot_h / 2:.0f}' font-size='12' text-anchor='middle' "
        f"transform='rotate(-90 15 {top + plot_h / 2:.0f})'>RUL (h)</text></svg>"
    )
    return "".join(parts)


def _plot_png(
    path: Path,
    names: list[str],
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
) -> None:
    try:
        import matplotlib  # type: ignore[import-not-found]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            f"--plot {path}: a PNG needs matplotlib, which is not installed; "
            "write .html or .svg instead"
        ) from None
    points = list(_points(names, predictions, truth, cap))
    fig, ax = plt.subplots(figsize=(max(6.0, len(names) * 0.12), 4.0))
    ks = [k for k, _, e, _ in points if e is not None]
    est = [e for _, _, e, _ in points if e is not None]
    ax.errorbar(
        ks,
        [e.rul_h for e in est],
        yerr=[[e.rul_h - e.low_h for e in est], [e.high_h - e.rul_h for e in est]],
        fmt="o",
        ms=3,
        label="predicted",
    )
    if truth is not None:
        ax.plot([k for k, *_ in points], [t for *_, t in points], "rx", label="true")
    ax.set_xlabel("devices (by true RUL)")
    ax.set_ylabel("RUL (h)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
