"""Desired state as a contract: the owner's side of ``PUT /twins/{device_id}/desired`` and the
commands agent's verdict on each change.

A PUT goes through these steps on the worker that owns the device (any other worker forwards
it there, :mod:`twin_stream.worker.views`):

1. the body must be a JSON object of settings (422), for a device the platform knows (404);
2. ``If-Match`` (optional): one or more twin versions, each bare or quoted as an ETag
   (``57``, ``"57"``; ``*`` for any; a weak ``W/"57"`` never matches), one of which must be
   the twin's version now, else 412 with the current version (also its ``ETag``); a header
   that names no version is 400;
3. the device type's ranges (:func:`twin_stream.domain.devices.check_settings`): 409 while the
   device's type is not known, 422 with one detail per refused setting, naming the field, its
   range, unit and the value asked (``{"field", "min", "max", "unit", "got", "error"}``);
4. the change goes on ``twin.commands`` with the version it was made against, and the PUT
   waits for the commands agent's verdict: 202 with the device's new desired document (the
   whole desired state, its ``twin_version`` also the ``ETag``), or the agent's refusal.

Every refusal also goes to the dead-letter topic with its reason, as a record of
``twin.commands`` (:meth:`CommandDesk.dead_letter`); the worker does not count those in the
device's ``invalid`` counter, which is about what the device sent.

Why the If-Match check is made in the commands agent, and its result reported back to the
waiting PUT, rather than with a lock and a map of reserved versions in the view: the twin's
version only moves in the agents, one event at a time per device (one partition, one consumer),
so a check made where the change is applied is atomic with it. Two PUTs with the same
If-Match are applied in the order they reach the partition: the first moves the version, the
second finds another one and is refused (412). There is no window between a check and a
reservation, no reservation to release when a send fails, and the check stays right across a
rebalance: a lock and a reserved-version map live in one process's memory and are lost when the
partition moves, while the agent checks the twin as its table holds it, in the partition's
order. The view checks once before sending too, so that a version already stale is refused at
once (versions only grow). The cost: a PUT waits for its command's round trip through Kafka
(milliseconds), and if no verdict comes within ``timeout_s`` (the partition moved in the
meantime) the answer is 504 with the command id: the change may still be applied, and the
twin's ``commands`` say whether it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from pydantic import ValidationError

from twin_stream.bridge.routing import dead_letter
from twin_stream.domain.events import COMMAND_TTL, Command
from twin_stream.domain.messages import DesiredSettings
from twin_stream.errors import CommandRefused
from twin_stream.worker.processing import DeviceState, Outputs

__all__ = ["CommandDesk", "Verdict", "etag", "if_match_versions"]

log = logging.getLogger(__name__)

#: The shortest and the longest time a change may be given to reach the device (``?ttl_s=``).
MIN_TTL: Final = timedelta(seconds=1)
MAX_TTL: Final = COMMAND_TTL


@dataclass(frozen=True)
class Verdict:
    """The answer to a PUT: its status, its JSON body, the twin version for its ``ETag``, and
    for an accepted change the desired state before and after it (for the audit trail)."""

    status: int
    body: dict[str, Any]
    version: int | None = None
    old: dict[str, Any] = field(default_factory=dict)
    new: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"ETag": etag(self.version)} if self.version is not None else {}


def etag(version: int) -> str:
    """The ``ETag`` of a twin at ``version`` (a strong entity tag).

    >>> etag(57)
    '"57"'
    """
    return f'"{version}"'


def if_match_versions(header: str | None) -> frozenset[int] | None:
    """The twin versions an ``If-Match`` header accepts; None when it accepts any (no header,
    or ``*``). A weak tag never matches (If-Match compares strongly); a tag that is no version
    is refused (400).

    >>> sorted(if_match_versions('"57", 58, W/"59"'))
    [57, 58]
    >>> if_match_versions("*") is None
    True
    """
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for raw in header.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            continue
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if not tag.isascii() or not tag.isdigit():
            raise CommandRefused(
                f"(If-Match): {raw.strip()!r} is not a twin version (send the ETag of "
                "GET /twins/{id}) [bad_if_match]",
                status=400,
                field="(If-Match)",
            )
        versions.add(int(tag))
    return frozenset(versions)


def _refusal(error: CommandRefused) -> Verdict:
    body: dict[str, Any] = {"error": error.reason}
    if error.details:
        body["details"] = error.details
    if error.version is not None:
        body["version"] = error.version
    return Verdict(error.status, body, error.version if error.status == 412 else None)


def _command_id(raw: bytes) -> str | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    command_id = value.get("command_id") if isinstance(value, dict) else None
    return command_id if isinstance(command_id, str) else None


def _accepted(state: DeviceState, command_id: str, document: Command) -> Verdict:
    record = state.twin.commands.get(command_id)
    new = document.desired.as_dict()
    previous = record.previous if record is not None else {}
    old = {k: v for k, v in {**new, **previous}.items() if v is not None}
    body = document.model_dump(mode="json", exclude={"if_match"})
    body["desired"] = new  # the settings the device is to have: none left null
    body["command_id"] = command_id
    body["status"] = record.status if record is not None else "pending"
    body["changes"] = record.changes if record is not None else {}
    return Verdict(202, body, document.twin_version, old, new)


class CommandDesk:
    """Where a PUT on the owner waits for the commands agent's verdict on its change, and the
    commands agent's step (:meth:`apply`) that gives it. One per worker process."""

    def __init__(self, topics: Mapping[str, Any], *, timeout_s: float = 10.0) -> None:
        self.topics = topics
        self.timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[Verdict]] = {}

    # -- the commands agent's side ---------------------------------------------------------

    def apply(self, state: DeviceState, event: Any, now: datetime) -> Outputs:
        """The commands agent's step: apply one command to the device's state, and tell the
        PUT that waits for it (if any) what became of it. A refusal is raised again, for the
        agent to dead-letter."""
        raw: bytes = event.value
        command_id = _command_id(raw)
        try:
            out = state.on_command(raw, now=now)
        except CommandRefused as e:
            self._settle(command_id, _refusal(e))
            raise
        except Exception as e:
            message = " ".join(str(e).split())
            error = f"the worker could not apply the change: {type(e).__name__}: {message}"
            self._settle(command_id, Verdict(500, {"error": error}))
            raise
        if command_id is not None and out.documents:
            self._settle(command_id, _accepted(state, command_id, out.documents[-1]))
        return out

    def _settle(self, command_id: str | None, verdict: Verdict) -> None:
        future = self._waiting.get(command_id) if command_id is not None else None
        if future is not None and not future.done():
            future.set_result(verdict)

    # -- the PUT's side --------------------------------------------------------------------

    async def put(
        self,
        device_id: str,
        state: DeviceState,
        body: bytes,
        *,
        if_match: str | None = None,
        ttl_s: str | None = None,
    ) -> Verdict:
        """Check a change of ``device_id``'s desired state, send it to the commands agent and
        wait for its verdict (``state`` is the device's, on the worker that owns it)."""
        now = datetime.now(UTC)
        try:
            command = self._command(device_id, state, body, if_match, ttl_s, now)
        except CommandRefused as e:
            await self.dead_letter(device_id, body, e.reason, now)
            return _refusal(e)
        waiting = self._waiting[command.command_id] = asyncio.get_running_loop().create_future()
        try:
            await self.topics["commands"].send(
                key=device_id.encode(), value=command.model_dump_json().encode()
            )
            return await asyncio.wait_for(asyncio.shield(waiting), self.timeout_s)
        except TimeoutError:
            log.warning(
                "no verdict on command %s of %s in %.0f s",
                command.command_id,
                device_id,
                self.timeout_s,
            )
            error = (
                f"the change was sent but not confirmed within {self.timeout_s:g} s: it may "
                "still be applied (see the twin's commands)"
            )
            return Verdict(504, {"error": error, "command_id": command.command_id})
        finally:
            self._waiting.pop(command.command_id, None)

    def _command(
        self,
        device_id: str,
        state: DeviceState,
        body: bytes,
        if_match: str | None,
        ttl_s: str | None,
        now: datetime,
    ) -> Command:
        """The command a PUT asks for, after the checks the view can make at once."""

        def invalid(reason: str, field: str = "(payload)") -> CommandRefused:
            return CommandRefused(reason, status=422, field=field)

        try:
            changes = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise invalid(f"(payload): not JSON: {e} [invalid_json]") from None
        if not isinstance(changes, dict):
            raise invalid("(payload): the body must be a JSON object of settings [not_an_object]")
        twin = state.twin
        versions = if_match_versions(if_match)
        if versions is not None and twin.version not in versions:
            wanted = ", ".join(str(v) for v in sorted(versions)) or "no strong ETag"
            raise CommandRefused(
                f"(If-Match): the twin of {device_id} is at version {twin.version}, not "
                f"{wanted} [precondition_failed]",
                status=412,
                field="(If-Match)",
                version=twin.version,
            )
        expected = twin.version if versions is not None else None
        twin.check_change(changes, if_match=expected)  # the type's ranges: 409, 422
        try:
            desired = DesiredSettings.model_validate(changes)
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(payload)"
            details = [
                {
                    "field": ".".join(str(p) for p in error["loc"]),
                    "min": None,
                    "max": None,
                    "unit": None,
                    "got": error.get("input"),
                    "error": error["msg"],
                }
                for error in e.errors(include_url=False)
            ]
            refused = invalid(f"{where}: {first['msg']} [{first['type']}]", where)
            refused.details = details
            raise refused from None
        if not desired.as_dict():
            raise invalid("(payload): no setting to change [empty_change]")
        ttl = COMMAND_TTL
        if ttl_s is not None:
            try:
                ttl = timedelta(seconds=float(ttl_s))
            except (ValueError, OverflowError):
                ttl = timedelta(0)
            if not MIN_TTL <= ttl <= MAX_TTL:
                raise invalid(
                    f"ttl_s: {ttl_s!r} is not a number of seconds from "
                    f"{MIN_TTL.total_seconds():g} to {MAX_TTL.total_seconds():g} [bad_ttl]",
                    "ttl_s",
                )
        command = Command.create(device_id, "set_desired", desired=desired, now=now, ttl=ttl)
        return command.model_copy(update={"twin_version": twin.version + 1, "if_match": expected})

    async def dead_letter(self, device_id: str, body: bytes, reason: str, now: datetime) -> None:
        """Send a refused change to the dead-letter topic, as a record of ``twin.commands``."""
        source = self.topics["commands"].get_topic_name()
        letter = dead_letter(source, body, reason, now, device_id)
        await self.topics["dlq"].send(key=letter.key, value=letter.value)
