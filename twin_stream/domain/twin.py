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
that is rejected or expires leaves desired state again (:meth:`Twin.withdraw`):

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

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from twin_stream.domain.devices import check_settings
from twin_stream.domain.messages import (
    AckStatus,
    DesiredSettings,
    ReportedState,
    StatusMessage,
    Telemetry,
)
from twin_stream.errors import CommandRefused

__all__ = [
    "FINISHED",
    "MAX_COMMANDS",
    "REORDER_WINDOW",
    "STALE_AFTER",
    "AckOutcome",
    "CommandRecord",
    "CommandStatus",
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
CommandStatus = Literal["pending", "delivered", "applied", "rejected", "expired"]
#: The statuses a command ends in: no later answer of the device changes them.
FINISHED: Final[frozenset[str]] = frozenset({"applied", "rejected", "expired"})
#: How many commands a twin remembers: the newest (finished ones are forgotten first).
MAX_COMMANDS: Final = 16


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


class CommandRecord(BaseModel):
    """One command sent to the device, as its twin remembers it: a change of desired state
    (``changes``, and each changed setting's desired value before it in ``previous``, null for
    none), or a ``withdraw`` that takes rejected or expired changes back out (``withdraws``).
    ``version`` is the twin version of the desired document that carries it; ``at`` is when
    its status last changed; ``reason`` says why it was rejected (the device's words) or
    expired."""

    kind: str
    status: CommandStatus = "pending"
    version: int
    changes: dict[str, Any] = Field(default_factory=dict)
    previous: dict[str, Any] = Field(default_factory=dict)
    withdraws: list[str] = Field(default_factory=list)
    issued_at: datetime
    expires_at: datetime
    at: datetime
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass
class AckOutcome:
    """What a device's answer changed: the commands whose status moved, and those of them that
    ended rejected or expired (their changes are to be withdrawn)."""

    changed: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


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
    #: The recent commands by id, oldest first (at most MAX_COMMANDS).
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
        the twin API's status): made against another version than the current one (412), for
        a device whose type is not known yet (409), or with a setting the type does not have
        or out of its range (422, one detail per setting)."""
        if if_match is not None and if_match != self.version:
            raise CommandRefused(
                f"(If-Match): the twin of {self.device_id} is at version {self.version}, "
                f"not {if_match} [precondition_failed]",
                status=412,
                field="(If-Match)",
                version=self.version,
            )
        if self.device_type is None:
            raise CommandRefused(
                f"device_type: the type of {self.device_id} is not known yet (it has sent no "
                "reading), so neither are its settings' ranges [unknown_device_type]",
                status=409,
                field="device_type",
                version=self.version,
            )
        violations = check_settings(self.device_type, changes)
        if violations:
            more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
            first = violations[0]
            raise CommandRefused(
                f"{first.field}: {first.message}{more} [{first.rule}]",
                status=422,
                field=first.field,
                details=[v.detail() for v in violations],
                version=self.version,
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
        self._remember(command_id, record)
        return record

    def latest_command(self) -> tuple[str, CommandRecord] | None:
        """The newest command: the one whose document holds the current desired state."""
        if not self.commands:
            return None
        command_id = next(reversed(self.commands))
        return command_id, self.commands[command_id]

    def document_expiry(self, *, now: datetime, default: datetime) -> datetime:
        """When the current desired document expires: the earliest expiry of the commands it
        carries that are not finished yet (a device never applies a change after its time),
        or ``default`` if none is pending."""
        pending = [
            r.expires_at for r in self.commands.values() if not r.finished and r.expires_at > now
        ]
        return min(pending, default=default)

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
        statuses; None if the twin knows no such command.

        A document holds every change up to its version, so the answer is about every
        unfinished command up to that version: ``delivered`` and ``applied`` move them all,
        ``rejected`` ends them all rejected (the document was refused as a whole), ``expired``
        ends those whose time has passed by the platform's clock or the device's (``sent_at``,
        the ack's own time). A finished command stays as it ended."""
        record = self.commands.get(command_id)
        if record is None:
            return None
        deadline = max(now, sent_at or now)
        outcome = AckOutcome()
        for cid, r in self.commands.items():
            if r.finished or r.version > record.version:
                continue
            if status == "delivered":
                if r.status != "pending":
                    continue
                r.status = "delivered"
            elif status == "applied":
                r.status = "applied"
            elif status == "rejected":
                r.status = "rejected"
                r.reason = reason or "rejected by the device"
            elif r.expires_at <= deadline:
                r.status = "expired"
                r.reason = reason or f"not applied before {r.expires_at.isoformat()}"
            else:
                continue
            r.at = now
            outcome.changed.append(cid)
            if r.status in ("rejected", "expired"):
                outcome.finished.append(cid)
        if status == "applied":
            self.last_command_id = command_id
        return outcome

    def expire_commands(self, *, now: datetime) -> list[str]:
        """End every unfinished command whose time has passed ``expired``; their ids."""
        expired = []
        for cid, r in self.commands.items():
            if not r.finished and r.expires_at <= now:
                r.status, r.at = "expired", now
                r.reason = f"not applied before {r.expires_at.isoformat()}"
                expired.append(cid)
        return expired

    def withdraw(
        self, command_ids: list[str], *, command_id: str, now: datetime, ttl: timedelta = _TTL
    ) -> CommandRecord | None:
        """Take the changes of rejected or expired commands back out of desired state (each
        setting goes back to its value before them, or leaves desired state if it had none,
        unless a later live command set it since), as a new ``withdraw`` command whose document
        the device gets instead. None if there is nothing to send: desired state did not
        change and no other command waits for a fresh document."""
        gone = [c for c in dict.fromkeys(command_ids) if c in self.commands]
        live = [
            r
            for cid, r in self.commands.items()
            if cid not in gone and r.status not in ("rejected", "expired")
        ]
        changed = False
        for cid in sorted(gone, key=lambda c: self.commands[c].version, reverse=True):
            record = self.commands[cid]
            for key, value in record.changes.items():
                if any(key in r.changes and r.version > record.version for r in live):
                    continue  # a later change of this setting stands
                if not _same(self.desired.get(key), value):
                    continue
                before = record.previous.get(key)
                if before is None:
                    self.desired.pop(key, None)
                else:
                    self.desired[key] = before
                changed = True
        waiting = any(not r.finished for r in live)
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
        self._remember(command_id, record)
        return record

    def _remember(self, command_id: str, record: CommandRecord) -> None:
        self.commands[command_id] = record
        while len(self.commands) > MAX_COMMANDS:
            oldest = next((c for c, r in self.commands.items() if r.finished), None)
            del self.commands[oldest if oldest is not None else next(iter(self.commands))]

    def _refresh_delta(self) -> None:
        # Desired keys the device has not (yet) reported as applied. An empty delta means the
        # device is in the state the platform asked for.
        self.delta = {k: v for k, v in self.desired.items() if not _same(self.reported.get(k), v)}

    def count_invalid(self) -> None:
        """Count a payload from this device that the bridge rejected."""
        self.quality.invalid += 1
