"""The digital twin of one device: pure state transitions, no I/O.

A twin holds what the device last reported (settings and latest readings), what the platform
desires, the delta between the two, connectivity, firmware, health and data-quality counters.
Readings are de-duplicated by ``seq`` with a reordering window: a redelivered message is
harmless, a slightly late one is still accepted, a very late one is rejected as stale.

>>> from datetime import datetime, timezone
>>> from twin_stream.domain.messages import DesiredSettings
>>> twin = Twin(device_id="pump-0001")
>>> now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> [twin.accept_seq(s) for s in (1, 2, 2, 5, 4, 3, 1)]
['accepted', 'accepted', 'duplicate', 'accepted', 'reordered', 'reordered', 'duplicate']
>>> twin.set_desired(DesiredSettings(rate=120.0), now=now)
1
>>> twin.delta
{'rate': 120.0}
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from twin_stream.domain.messages import (
    DesiredSettings,
    ReportedState,
    StatusMessage,
    Telemetry,
)

__all__ = [
    "REORDER_WINDOW",
    "STALE_AFTER",
    "Connectivity",
    "DataQuality",
    "Health",
    "ReadingOutcome",
    "Twin",
    "heartbeat_timeout",
]

#: How many seqs below the newest one are remembered for de-duplication. A reading older than
#: that cannot be told from a duplicate, so it is rejected as stale.
REORDER_WINDOW: Final = 256
#: A reading whose device timestamp is this much older than the newest accepted one is stale.
STALE_AFTER: Final = timedelta(minutes=10)

ReadingOutcome = Literal["accepted", "reordered", "duplicate", "stale"]
Connectivity = Literal["unknown", "online", "offline"]
Health = Literal["unknown", "ok", "degraded", "failing"]


def heartbeat_timeout(sample_interval_s: float) -> timedelta:
    """How long a device may stay silent before its twin calls it offline.

    >>> heartbeat_timeout(1.0), heartbeat_timeout(60.0)
    (datetime.timedelta(seconds=30), datetime.timedelta(seconds=300))
    """
    return timedelta(seconds=max(30.0, 5 * sample_interval_s))


class DataQuality(BaseModel):
    """Counters of what went wrong with the data, kept apart from device faults."""

    accepted: int = 0
    duplicates: int = 0
    reordered: int = 0
    stale: int = 0
    invalid: int = 0  # payloads the bridge sent to the dead-letter topic
    gaps: int = 0  # seqs that never arrived within the reordering window
    dropouts: int = 0  # metrics a reading left empty (sensor gave no value)
    restarts: int = 0  # times the device restarted its seq counter


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


class Twin(BaseModel):
    """The live twin of one device."""

    device_id: str
    device_type: str | None = None
    version: int = 0  # bumped on every change of reported, desired or connectivity
    reported: dict[str, Any] = Field(default_factory=dict)
    desired: dict[str, Any] = Field(default_factory=dict)
    delta: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)  # latest value of each signal
    metrics_ts: datetime | None = None
    last_seen: datetime | None = None
    connectivity: Connectivity = "unknown"
    firmware: str | None = None
    health: Health = "unknown"
    last_command_id: str | None = None
    last_seq: int | None = None
    seen_mask: int = 0  # bit i set: seq (last_seq - i) was accepted
    quality: DataQuality = Field(default_factory=DataQuality)

    # -- readings ---------------------------------------------------------------------------

    def accept_seq(self, seq: int) -> ReadingOutcome:
        """De-duplicate one seq against the window; update the window when it is new."""
        window = (1 << REORDER_WINDOW) - 1
        if self.last_seq is None:
            # Seqs before the first one this twin sees count as seen: they are not gaps, and
            # one arriving late is most likely a redelivery from before a restart.
            self.last_seq, self.seen_mask = seq, window
            return "accepted"
        ahead = seq - self.last_seq
        if ahead > 0:
            leaving_from = max(0, REORDER_WINDOW - ahead)
            leaving = self.seen_mask >> leaving_from  # bits about to drop out of the window
            never_seen = (REORDER_WINDOW - leaving_from) - bin(leaving).count("1")
            skipped_past_window = max(0, ahead - REORDER_WINDOW)
            self.quality.gaps += never_seen + skipped_past_window
            self.seen_mask = ((self.seen_mask << ahead) | 1) & window
            self.last_seq = seq
            return "accepted"
        behind = -ahead
        if behind >= REORDER_WINDOW:
            return "stale"
        if self.seen_mask >> behind & 1:
            return "duplicate"
        self.seen_mask |= 1 << behind
        return "reordered"

    def resume_before(self, seq: int) -> None:
        """Count every seq before ``seq`` as seen: the twin was restored from a checkpoint and
        the readings since then may have been handled before (so they are neither gaps nor
        new). Redeliveries of older seqs are still recognised as duplicates."""
        if self.last_seq is not None and seq > self.last_seq + 1:
            self.last_seq = seq - 1
            self.seen_mask = (1 << REORDER_WINDOW) - 1

    def apply_reading(self, reading: Telemetry, *, now: datetime) -> ReadingOutcome:
        """Fold one telemetry reading into the twin; say whether it was new."""
        if self.metrics_ts is not None and reading.ts < self.metrics_ts - STALE_AFTER:
            outcome: ReadingOutcome = "stale"
        else:
            outcome = self.accept_seq(reading.seq)
        counter = {
            "accepted": None,
            "reordered": "reordered",
            "duplicate": "duplicates",
            "stale": "stale",
        }[outcome]
        if counter is not None:
            setattr(self.quality, counter, getattr(self.quality, counter) + 1)
        if outcome in ("duplicate", "stale"):
            return outcome
        self.quality.accepted += 1
        self.device_type = reading.device_type
        self.last_seen = now
        if self.firmware != reading.fw:
            self.firmware = reading.fw
            self.version += 1
        values = reading.metrics.model_dump()
        self.quality.dropouts += sum(v is None for v in values.values())
        # A reordered (older) reading still counts, but does not overwrite newer values.
        if self.metrics_ts is None or reading.ts >= self.metrics_ts:
            self.metrics.update({k: v for k, v in values.items() if v is not None})
            self.metrics_ts = reading.ts
        if self.connectivity != "online":
            self.connectivity = "online"  # data is proof of life, even without a birth message
            self.version += 1
        return outcome

    # -- status and heartbeat ---------------------------------------------------------------

    def apply_status(self, status: StatusMessage, *, now: datetime) -> bool:
        """Apply a birth, shutdown or last-will message; True if connectivity changed."""
        self.firmware = status.fw
        if status.state == "online":
            self.last_seen = now
        if (
            status.reason == "birth"
            and status.next_seq is not None
            and self.last_seq is not None
            and status.next_seq <= self.last_seq
        ):
            # The device restarted its counter: start de-duplicating afresh.
            self.last_seq, self.seen_mask = None, 0
            self.quality.restarts += 1
        return self._set_connectivity(status.state)

    def check_heartbeat(self, *, now: datetime) -> bool:
        """Mark a silent device offline; True if that changed its connectivity."""
        if self.connectivity != "online" or self.last_seen is None:
            return False
        interval = float(self.reported.get("sample_interval_s", 1.0))
        if now - self.last_seen > heartbeat_timeout(interval):
            return self._set_connectivity("offline")
        return False

    def _set_connectivity(self, connectivity: Connectivity) -> bool:
        if connectivity == self.connectivity:
            return False
        self.connectivity = connectivity
        self.version += 1
        return True

    # -- reported and desired state ---------------------------------------------------------

    def apply_reported(self, report: ReportedState, *, now: datetime) -> bool:
        """Take the device's reported settings; True if they changed."""
        self.last_seen = now
        settings = report.settings.model_dump()
        changed = settings != self.reported
        self.reported = settings
        if report.command_id is not None:
            self.last_command_id = report.command_id
        self._refresh_delta()
        if changed:
            self.version += 1
        return changed

    def set_desired(self, desired: DesiredSettings, *, now: datetime) -> int:
        """Merge desired settings into the twin; return the new twin version."""
        self.desired.update(desired.as_dict())
        self._refresh_delta()
        self.version += 1
        return self.version

    def _refresh_delta(self) -> None:
        # Desired keys the device has not (yet) reported as applied. An empty delta means the
        # device is in the state the platform asked for.
        self.delta = {k: v for k, v in self.desired.items() if not _same(self.reported.get(k), v)}

    def count_invalid(self) -> None:
        """Count a payload from this device that the bridge rejected."""
        self.quality.invalid += 1
