"""What the policy remembers per condition and per alert (pickled with it in checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twin_stream.domain.detection.state import RestoresByAttribute
from twin_stream.domain.events import (
    Alert,
    AlertKind,
    ContributionLike,
    Prediction,
    PredictionRecord,
    Severity,
)

__all__ = ["_Condition", "_Slot"]


@dataclass
class _Condition(RestoresByAttribute):
    """One thing the policy watches: an anomaly, a signal's predicted failure, a data-quality
    finding, the device offline. Active conditions feed the alert of their ``slot``."""

    kind: AlertKind
    slot: str = ""
    active: bool = False
    order: int = 0  # activation order: the first active condition names the alert's kind
    streak: int = 0  # consecutive readings (or reports) meeting the raise condition
    calm: int = 0  # consecutive readings (or reports) meeting the clear condition
    above: int = 0  # consecutive readings at or above the raise level (sustained anomalies)
    cooldown: int = 0
    seq_first: int | None = None
    peak: Severity = "info"  # the severity the condition has earned
    severity: Severity = "info"  # what it shows now (info while suppressed)
    note: str = ""  # why it does not page, if it does not
    quiet: bool = False  # began in the quiet period after maintenance
    latched: bool = False  # its signal went past the failure limit: the device failed
    text: str = ""
    signature: str = ""  # the coarse content of ``text``: a change of it updates the alert
    contributions: list[ContributionLike] = field(default_factory=list)
    prediction: PredictionRecord | Prediction | None = None
    shown_ttf: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def reset(self, cooldown: int = 0) -> None:
        self.active, self.streak, self.calm, self.above = False, 0, 0, 0
        self.seq_first, self.peak, self.severity, self.note = None, "info", "info", ""
        self.quiet, self.shown_ttf, self.cooldown = False, None, cooldown
        self.latched = False


@dataclass
class _Slot(RestoresByAttribute):
    """One alert: the last event emitted (None while an info alert waits for its turn)."""

    alert: Alert | None = None
    kinds: list[str] = field(default_factory=list)
    signature: tuple[str, ...] = ()
