"""A twin's commands: desired state as a contract with the device, pure, no I/O.

Each change of desired state is a :class:`CommandRecord`, remembered by the twin with the twin
version of the desired document that carries it and its status (``pending``, ``delivered``,
``applied``, ``rejected``, ``expired``). The functions here are the rules of that ledger: what
change may be sent (:func:`check_change`), how a device's answer moves the statuses
(:func:`fold_ack`), when commands expire, what a withdrawal takes back out of desired state
(:func:`withdraw_changes`) and which commands are kept (:func:`remember`).
:class:`~twin_stream.domain.twin.Twin` applies them to its own state.

>>> from datetime import datetime, timezone
>>> now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> commands = {"cmd-1": CommandRecord(kind="set_desired", version=1, changes={"rate": 80.0},
...                                    issued_at=now, expires_at=now, at=now)}
>>> fold_ack(commands, "cmd-1", "rejected", "motor busy", now=now).finished
['cmd-1']
>>> desired = {"rate": 80.0}
>>> withdraw_changes(commands, desired, ["cmd-1"]), desired
((True, False), {})
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from twin_stream.domain.devices import check_settings
from twin_stream.domain.messages import AckStatus
from twin_stream.errors import CommandRefused

__all__ = [
    "FINISHED",
    "MAX_COMMANDS",
    "AckOutcome",
    "CommandRecord",
    "CommandStatus",
    "check_change",
    "document_expiry",
    "expire",
    "fold_ack",
    "remember",
    "same_value",
    "withdraw_changes",
]

CommandStatus = Literal["pending", "delivered", "applied", "rejected", "expired"]
#: The statuses a command ends in: no later answer of the device changes them.
FINISHED: Final[frozenset[str]] = frozenset({"applied", "rejected", "expired"})
#: How many commands a twin remembers: the newest (finished ones are forgotten first).
MAX_COMMANDS: Final = 16


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


def same_value(a: Any, b: Any) -> bool:
    """Whether a reported and a desired value are the same setting (floats within 1e-9)."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def check_change(
    device_id: str,
    device_type: str | None,
    version: int,
    changes: dict[str, Any],
    *,
    if_match: int | None,
) -> None:
    """Refuse a change of desired state the platform must not send (CommandRefused, with
    the twin API's status): made against another version than the current one (412), for
    a device whose type is not known yet (409), or with a setting the type does not have
    or out of its range (422, one detail per setting)."""
    if if_match is not None and if_match != version:
        raise CommandRefused(
            f"(If-Match): the twin of {device_id} is at version {version}, "
            f"not {if_match} [precondition_failed]",
            status=412,
            field="(If-Match)",
            version=version,
        )
    if device_type is None:
        raise CommandRefused(
            f"device_type: the type of {device_id} is not known yet (it has sent no "
            "reading), so neither are its settings' ranges [unknown_device_type]",
            status=409,
            field="device_type",
            version=version,
        )
    violations = check_settings(device_type, changes)
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        first = violations[0]
        raise CommandRefused(
            f"{first.field}: {first.message}{more} [{first.rule}]",
            status=422,
            field=first.field,
            details=[v.detail() for v in violations],
            version=version,
        )


def document_expiry(
    commands: dict[str, CommandRecord], *, now: datetime, default: datetime
) -> datetime:
    """When the current desired document expires: the earliest expiry of the commands it
    carries that are not finished yet (a device never applies a change after its time),
    or ``default`` if none is pending."""
    pending = [r.expires_at for r in commands.values() if not r.finished and r.expires_at > now]
    return min(pending, default=default)


def fold_ack(
    commands: dict[str, CommandRecord],
    command_id: str,
    status: AckStatus,
    reason: str | None,
    *,
    now: datetime,
    sent_at: datetime | None = None,
) -> AckOutcome | None:
    """Fold the device's answer to the document of ``command_id`` into the commands'
    statuses; None if there is no such command.

    A document holds every change up to its version, so the answer is about every
    unfinished command up to that version: ``delivered`` and ``applied`` move them all,
    ``rejected`` ends them all rejected (the document was refused as a whole), ``expired``
    ends those whose time has passed by the platform's clock or the device's (``sent_at``,
    the ack's own time). A finished command stays as it ended."""
    record = commands.get(command_id)
    if record is None:
        return None
    deadline = max(now, sent_at or now)
    outcome = AckOutcome()
    for cid, r in commands.items():
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
    return outcome


def expire(commands: dict[str, CommandRecord], *, now: datetime) -> list[str]:
    """End every unfinished command whose time has passed ``expired``; their ids."""
    expired = []
    for cid, r in commands.items():
        if not r.finished and r.expires_at <= now:
            r.status, r.at = "expired", now
            r.reason = f"not applied before {r.expires_at.isoformat()}"
            expired.append(cid)
    return expired


def withdraw_changes(
    commands: dict[str, CommandRecord], desired: dict[str, Any], gone: list[str]
) -> tuple[bool, bool]:
    """Take the changes of the commands ``gone`` back out of ``desired`` (each setting goes
    back to its value before them, or leaves desired state if it had none, unless a later live
    command set it since): whether desired state changed, and whether another command is
    still waiting for a document."""
    live = [
        r
        for cid, r in commands.items()
        if cid not in gone and r.status not in ("rejected", "expired")
    ]
    changed = False
    for cid in sorted(gone, key=lambda c: commands[c].version, reverse=True):
        record = commands[cid]
        for key, value in record.changes.items():
            if any(key in r.changes and r.version > record.version for r in live):
                continue  # a later change of this setting stands
            if not same_value(desired.get(key), value):
                continue
            before = record.previous.get(key)
            if before is None:
                desired.pop(key, None)
            else:
                desired[key] = before
            changed = True
    return changed, any(not r.finished for r in live)


def remember(commands: dict[str, CommandRecord], command_id: str, record: CommandRecord) -> None:
    """Add ``record``, then forget the oldest commands beyond :data:`MAX_COMMANDS` (finished
    ones first)."""
    commands[command_id] = record
    while len(commands) > MAX_COMMANDS:
        oldest = next((c for c, r in commands.items() if r.finished), None)
        del commands[oldest if oldest is not None else next(iter(commands))]
