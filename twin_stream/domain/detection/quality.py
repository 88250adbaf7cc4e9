"""Data quality of one device's signals: stuck sensors, dropouts, readings pinned at a range
limit, and clock skew. Findings are about the *measurement*, not the device's health, and the
alert policy keeps them apart from device faults (kind ``data_quality``).

Each check is a small counter per signal, so the cost is a few comparisons per reading:

* stuck: the same non-zero value for ``STUCK_READINGS`` readings in a row, on a signal that
  normally moves (zero is an "off" reading: a paused pump's flow; a value resting at its
  physical limit, a battery charged to 100 %, is full, not stuck). A real sensor's noise
  makes exact repeats rare; a frozen ADC or a stuck flow sensor repeats its last value.
* dropout: the signal missing in ``DROPOUT_SHARE`` of the last ``DROPOUT_WINDOW`` readings,
  intermittently (at least ``DROPOUT_SWITCHES`` switches between present and missing), on a
  signal that the device normally reports. A signal that is simply not reported for a while
  (no O2 concentration on a ventilator's standby) is a mode, not a dropout.
* pinned: the value at a non-zero physical range limit (``MetricSpec.low``/``high``) for
  ``PINNED_READINGS`` readings in a row, reached by a jump (from more than a tenth of the range
  away): a saturated or disconnected sensor. Zero is an "off" reading (a paused pump's flow), a
  learned operating mode rather than a rail, and a battery that charges up to 100 % approaches
  its limit gradually.
* clock skew: the device's timestamp more than ``SKEW_S`` seconds from the time the reading
  reached the platform, for ``SKEW_READINGS`` readings in a row (NTP lost, a reset RTC).

>>> q = QualityMonitor("infusion_pump")
>>> for i in range(40):
...     found = q.update({"flow_rate": 120.0 + (i % 3) * 0.5})
>>> found
[]
>>> for i in range(40):
...     found = q.update({"flow_rate": 121.0})
>>> [(f.metric, f.issue) for f in found]
[('flow_rate', 'stuck')]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from twin_stream.domain.detection.state import RestoresByAttribute
from twin_stream.domain.devices import METRICS_BY_TYPE, MetricSpec

__all__ = ["QualityFinding", "QualityIssue", "QualityMonitor"]

QualityIssue = Literal["stuck", "dropout", "pinned", "clock_skew"]

#: 30 identical readings: at one reading a second, half a minute of a frozen value. Noise makes
#: a run this long on a live analogue signal vanishingly rare (the simulator's noise, like a
#: real sensor's, changes the last digit every reading).
STUCK_READINGS = 30
#: A signal must have moved at least this many times before a run of repeats counts as stuck
#: (a setting such as a fixed rate, or a signal that only steps, is not a sensor fault).
STUCK_MIN_CHANGES = 20
#: Dropouts: a quarter of the last 60 readings missing.
DROPOUT_WINDOW = 60
DROPOUT_SHARE = 0.25
#: ... intermittently: 6 switches is 3 gaps in the window (a stretch of standby has 1 or 2).
DROPOUT_SWITCHES = 6
PINNED_READINGS = 10
#: Clock skew beyond 2 minutes (NTP keeps clocks within milliseconds; minutes mean no sync).
SKEW_S = 120.0
SKEW_READINGS = 10


@dataclass(frozen=True)
class QualityFinding:
    """One data-quality condition that holds now on one signal."""

    metric: str
    issue: QualityIssue
    detail: str


@dataclass
class _SignalQuality(RestoresByAttribute):
    last: float | None = None
    repeats: int = 0
    changes: int = 0
    pinned: int = 0
    #: whether the current stretch at a limit began with a jump to it
    jumped: bool = False
    seen: int = 0
    missing: deque[bool] = field(default_factory=lambda: deque(maxlen=DROPOUT_WINDOW))
    #: how many of ``missing`` are True, and how many switches between present and missing
    #: it holds (kept as counts: no pass over the window per reading)
    missed: int = 0
    switches: int = 0

    def note(self, absent: bool) -> int:
        """Record whether the signal is missing now; return how many of the window are."""
        window = self.missing
        if len(window) == DROPOUT_WINDOW:
            first = window.popleft()
            self.missed -= first
            self.switches -= first != window[0]
        if window:
            self.switches += window[-1] != absent
        window.append(absent)
        self.missed += absent
        return self.missed


class QualityMonitor(RestoresByAttribute):
    """Data-quality checks of one device's signals (see module docstring)."""

    def __init__(self, device_type: str) -> None:
        self.specs: dict[str, MetricSpec] = METRICS_BY_TYPE.get(device_type, {})
        self.signals: dict[str, _SignalQuality] = {}
        self.skewed = 0
        self.skew_s = 0.0

    def reset(self) -> None:
        """Forget everything (after maintenance: a replaced sensor starts afresh)."""
        self.signals.clear()
        self.skewed = 0

    def update(
        self, metrics: dict[str, float | None], skew_s: float | None = None
    ) -> list[QualityFinding]:
        """Feed one reading; return every condition that holds after it."""
        found: list[QualityFinding] = []
        signals, specs = self.signals, self.specs
        for name, value in metrics.items():
            try:
                s = signals[name]
            except KeyError:
                s = signals[name] = _SignalQuality()
            if value is not None and not s.missed:
                # Present now and throughout the window: only the window moves (a full one
                # drops its oldest, also present); no count changes. The usual case.
                s.missing.append(False)
                missing, dropping = 0, False
            else:
                missing = s.note(value is None)
                dropping = (
                    missing >= DROPOUT_SHARE * DROPOUT_WINDOW
                    and s.seen >= DROPOUT_WINDOW
                    and s.switches >= DROPOUT_SWITCHES
                )
            if value is None:
                if dropping:
                    found.append(
                        QualityFinding(
                            name,
                            "dropout",
                            f"{name} missing in {missing} of the last {len(s.missing)} readings",
                        )
                    )
                continue
            s.seen += 1
            previous = s.last
            if previous is not None and value == previous:
                repeats = s.repeats = s.repeats + 1
            else:
                if previous is not None:
                    s.changes += 1
                repeats = s.repeats = 0
            s.last = value
            spec = specs.get(name)
            limit = None
            if spec is not None:
                low, high = spec.low, spec.high
                if value <= low and low != 0:
                    limit = low
                elif value >= high and high != 0:
                    limit = high
            if limit is None:
                pinned = s.pinned = 0
            else:
                if s.pinned == 0:
                    span = spec.high - spec.low  # type: ignore[union-attr]
                    s.jumped = previous is not None and abs(previous - limit) > 0.1 * span
                pinned = s.pinned = s.pinned + 1
            if pinned >= PINNED_READINGS and s.jumped and spec is not None:
                unit = f" {spec.unit}"
                found.append(
                    QualityFinding(
                        name,
                        "pinned",
                        f"{name} pinned at its range limit {value:g}{unit} for {pinned} readings",
                    )
                )
            elif (
                repeats + 1 >= STUCK_READINGS
                and s.changes >= STUCK_MIN_CHANGES
                and value != 0
                # Resting at a physical limit reached gradually (a battery charged to 100 %)
                # is neither stuck nor pinned.
                and not (spec is not None and (value <= spec.low or value >= spec.high))
            ):
                unit = f" {spec.unit}" if spec is not None else ""
                found.append(
                    QualityFinding(
                        name,
                        "stuck",
                        f"{name} stuck at {value:g}{unit} for {repeats + 1} readings",
                    )
                )
            elif dropping:
                found.append(
                    QualityFinding(
                        name,
                        "dropout",
                        f"{name} missing in {missing} of the last {len(s.missing)} readings",
                    )
                )
        if skew_s is not None:
            self.skewed = self.skewed + 1 if abs(skew_s) > SKEW_S else 0
            self.skew_s = skew_s
            if self.skewed >= SKEW_READINGS:
                found.append(
                    QualityFinding(
                        "ts", "clock_skew", f"device clock {skew_s:+.0f} s off the platform's"
                    )
                )
        return found
