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

The files are read in :mod:`.rul_files`, the ``--plot`` drawn in :mod:`.rul_plot`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from twin_stream.devtools.evaluation.replay import DEFAULT_TYPE, _device_id
from twin_stream.devtools.evaluation.rul_files import Row, read_histories, read_truth
from twin_stream.devtools.evaluation.rul_plot import write_plot
from twin_stream.domain.detection.health import HealthMonitor, HealthReading
from twin_stream.domain.detection.params import HealthParams
from twin_stream.domain.detection.rul import FleetModel, RulEstimate
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.errors import UNREADABLE_DATASET, DatasetError, map_exceptions

__all__ = [
    "DEFAULT_CAP_H",
    "Unit",
    "evaluate_rul",
    "nasa_score",
    "step",
]


#: The usual C-MAPSS protocol caps the remaining useful life at 125 cycles (here hours).
DEFAULT_CAP_H: Final = 125.0
#: A unit paged while more than this many hours remained is an early (false) page.
DEFAULT_EARLY_H: Final = 150.0
#: Units whose record ends within this many hours of failure are also counted apart.
NEAR_FAILURE_H: Final = 50.0


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
