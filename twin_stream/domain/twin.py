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

Desired state is a contract with the device. Each change is a *command*, remembered with the
twin version of the desired document that carries it (the whole desired state, so a device
that was away gets every change at once) and its status: ``pending``, ``delivered`` (the
device has it), ``applied``, ``rejected`` (with the device's reason) or ``expired``. A change
that is rejected or expires leaves desired state again (:meth:`Twin.withdraw`;
:mod:`~twin_stream.domain.commands` holds the rules):

>>> from datetime import timedelta
>>> twin.device_type = "infusion_pump"
>>> twin.check_change({"rate": 80.0}, if_match=twin.version)
>>> record = twin.request_change("cmd-00000002", "set_desired", {"rate": 80.0},
...                              expires_at=now + timedelta(hours=1), now=now)
>>> record.version, record.status, twin.desired
(2, 'pending', {'rate': 80.0})
>>> twin.apply_ack("cmd-00000002", "rejected", "motor busy", now=now).finished
['cmd-00000002']
>>> twin.withdraw(["cmd-00000002"], command_id="cmd-00000003", now=now).withdraws
['cmd-00000002']
>>> twin.desired, twin.commands["cmd-00000002"].reason
({'rate': 120.0}, 'motor busy')
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from twin_stream.domain import commands as ledger
from twin_stream.domain.commands import AckOutcome, CommandRecord, same_value
from twin_stream.domain.messages import (
    AckStatus,
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
#: How long a ``withdraw`` command's document stays valid (a change's own is set by whoever
#: asked for it: :data:`twin_stream.domain.events.COMMAND_TTL` by default).
_TTL: Final = timedelta(hours=24)

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
    #: The recent commands by id, oldest first (at most commands.MAX_COMMANDS).
    commands: dict[str, CommandRecord] = Field(default_factory=dict)

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
        """Apply a birth, shutdown or last-will message, or the worker's own missed-heartbeat
        notice; True if connectivity changed.

        A missed-heartbeat notice (``reason="heartbeat"``, stamped with the moment the device
        became overdue) counts only if the device is still overdue by then: a reading or a
        birth handled since it was sent makes it void."""
        if status.reason == "heartbeat":
            overdue = self.overdue_at()
            if overdue is None or overdue > status.ts:
                return False
            return self._set_connectivity("offline")
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

    def overdue_at(self) -> datetime | None:
        """When an online device counts as silent for too long: its last contact plus its
        heartbeat timeout (None for a device not online, or never seen)."""
        if self.connectivity != "online" or self.last_seen is None:
            return None
        interval = float(self.reported.get("sample_interval_s", 1.0))
        return self.last_seen + heartbeat_timeout(interval)

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

    # -- commands: desired state as a contract ---------------------------------------------

    def check_change(self, changes: dict[str, Any], *, if_match: int | None) -> None:
        """Refuse a change of desired state the platform must not send (CommandRefused, with
        the twin API's status; :func:`~twin_stream.domain.commands.check_change`)."""
        ledger.check_change(
            self.device_id, self.device_type, self.version, changes, if_match=if_match
        )

    def request_change(
        self,
        command_id: str,
        kind: str,
        changes: dict[str, Any],
        *,
        expires_at: datetime,
        now: datetime,
        issued_at: datetime | None = None,
    ) -> CommandRecord:
        """Merge a change into desired state as a new pending command, carried by the new twin
        version's desired document (checked first: :meth:`check_change`)."""
        previous = {key: self.desired.get(key) for key in changes}
        self.desired.update(changes)
        self._refresh_delta()
        self.version += 1
        record = CommandRecord(
            kind=kind,
            version=self.version,
            changes=dict(changes),
            previous=previous,
            issued_at=issued_at or now,
            expires_at=expires_at,
            at=now,
        )
        ledger.remember(self.commands, command_id, record)
        return record

    def latest_command(self) -> tuple[str, CommandRecord] | None:
        """The newest command: the one whose document holds the current desired state."""
        if not self.commands:
            return None
        command_id = next(reversed(self.commands))
        return command_id, self.commands[command_id]

    def document_expiry(self, *, now: datetime, default: datetime) -> datetime:
        """When the current desired document expires: the earliest expiry of the commands it
        carries that are not finished yet, or ``default`` if none is pending."""
        return ledger.document_expiry(self.commands, now=now, default=default)

    def apply_ack(
        self,
        command_id: str,
        status: AckStatus,
        reason: str | None,
        *,
        now: datetime,
        sent_at: datetime | None = None,
    ) -> AckOutcome | None:
        """Fold the device's answer to the document of ``command_id`` into the commands'
        statuses (:func:`~twin_stream.domain.commands.fold_ack`); None if the twin knows no
        such command."""
        commands = self.commands
        outcome = ledger.fold_ack(commands, command_id, status, reason, now=now, sent_at=sent_at)
        if outcome is not None and status == "applied":
            self.last_command_id = command_id
        return outcome

    def expire_commands(self, *, now: datetime) -> list[str]:
        """End every unfinished command whose time has passed ``expired``; their ids."""
        return ledger.expire(self.commands, now=now)

    def withdraw(
        self, command_ids: list[str], *, command_id: str, now: datetime, ttl: timedelta = _TTL
    ) -> CommandRecord | None:
        """Take the changes of rejected or expired commands back out of desired state (each
        setting goes back to its value before them, or leaves desired state if it had none,
        unless a later live command set it since), as a new ``withdraw`` command whose document
        the device gets instead. None if there is nothing to send: desired state did not
        change and no other command waits for a fresh document."""
        gone = [c for c in dict.fromkeys(command_ids) if c in self.commands]
        changed, waiting = ledger.withdraw_changes(self.commands, self.desired, gone)
        if not changed and not waiting:
            return None
        self._refresh_delta()
        self.version += 1
        record = CommandRecord(
            kind="withdraw",
            version=self.version,
            withdraws=sorted(gone, key=lambda c: self.commands[c].version),
            issued_at=now,
            expires_at=now + ttl,
            at=now,
        )
        ledger.remember(self.commands, command_id, record)
        return record

    def _refresh_delta(self) -> None:
        # Desired keys the device has not (yet) reported as applied. An empty delta means the
        # device is in the state the platform asked for.
        reported = self.reported
        self.delta = {k: v for k, v in self.desired.items() if not same_value(reported.get(k), v)}

    def count_invalid(self) -> None:
        """Count a payload from this device that the bridge rejected."""
        self.quality.invalid += 1
