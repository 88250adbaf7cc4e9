"""The twin API, served by every worker (Faust web views on aiohttp).

* ``GET /twins``: every twin, gathered from every worker that owns partitions;
* ``GET /twins/{device_id}``: one twin, answered by the worker that owns the device, with its
  version as the ``ETag``;
* the alerts (``GET /alerts``, acknowledge, shelve): :mod:`twin_stream.worker.alert_views`;
* ``PUT /twins/{device_id}/desired``: change desired state; produces a command on
  ``twin.commands``, which the owner's commands agent checks and merges into the device's
  desired document (the bridge delivers that). 202 with the new document and its version
  (``ETag``); 404 for an unknown device, 400 for a bad ``If-Match``, 412 for a stale one, 409
  while the device's type is unknown, 422 for an invalid body or a setting out of the type's
  range (naming the field and its range): :mod:`twin_stream.worker.commands`. ``?ttl_s=``
  gives the change less than a day to reach the device. Each accepted change is recorded on
  ``twin.audit`` (:func:`twin_stream.worker.audit_views.audit`).

* ``POST /twins/{device_id}/failures`` (``operator``), body ``{"at": "<ISO time>", "note":
  "..."}``: record that the device failed at ``at`` (an engineer's record, what
  ``twin-stream failures add`` sends); ``POST /twins/{device_id}/rebaseline`` (``operator``),
  body ``{"note": "..."}`` (optional): learn the device's normal, its healthy reference too,
  afresh from now. Both travel on ``twin.lifecycle`` to the device's owner (202 with the
  record), are audited (``failure_recorded``, ``rebaseline``), and are refused with the reason:
  404 for an unknown device, 422 for a time in the future, without a time zone or not a time.

Every route needs a bearer token whose role may use it (:mod:`twin_stream.worker.web_auth`);
a request forwarded to another worker carries the caller's ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import faust
import orjson
from pydantic import ValidationError
from yarl import URL

from twin_stream.domain.records import LifecycleEvent
from twin_stream.worker.audit_views import audit
from twin_stream.worker.commands import CommandDesk, etag
from twin_stream.worker.processing import DeviceState, twin_view
from twin_stream.worker.web_auth import forwarded_headers, principal_of

__all__ = ["register_views"]

LOCAL = "local"  # ?scope=local: only this worker's twins (used when gathering)
#: Set on a request one worker forwards to the device's owner: the owner answers it itself,
#: even if its view of who owns what differs for a moment (no forwarding back and forth).
FORWARDED = "X-Twin-Forwarded"


def lifecycle_event(
    kind: Literal["failure", "rebaseline"], device_id: str, body: bytes, *, by: str, now: datetime
) -> LifecycleEvent:
    """The record of a failure or a re-baseline asked with ``body``; ValueError with the reason
    for a body that is not what it should be (a failure needs its time ``at``, with a time zone
    and not in the future; a re-baseline is from now).

    >>> now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    >>> lifecycle_event("failure", "pump-0001", b'{"at": "2026-12-07T11:00:00Z"}', by="ann",
    ...                 now=now).at.isoformat()
    '2026-12-07T11:00:00+00:00'
    >>> lifecycle_event("failure", "pump-0001", b'{"at": "2026-12-08T11:00:00Z"}', by="ann",
    ...                 now=now)
    Traceback (most recent call last):
    ...
    ValueError: at: 2026-12-08T11:00:00+00:00 is in the future (now 2026-12-07T12:00:00+00:00)
    """
    try:
        asked = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as e:
        raise ValueError(f"the body is not JSON: {e}") from e
    if not isinstance(asked, dict):
        raise ValueError("the body must be a JSON object")
    unknown_fields = sorted(set(asked) - {"at", "note"})
    if unknown_fields:
        raise ValueError(f"{unknown_fields[0]}: not a field of a {kind} record")
    note = asked.get("note")
    if note is not None and not isinstance(note, str):
        raise ValueError("note: must be a string")
    if kind == "rebaseline":
        at = now
    else:
        text = asked.get("at")
        if not isinstance(text, str):
            raise ValueError("at: the time the device failed is required (ISO 8601)")
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"at: not a time: {text!r}") from e
        if at.tzinfo is None:
            raise ValueError(f"at: {text!r} needs a time zone (e.g. 2026-12-07T11:00:00Z)")
        if at > now:
            raise ValueError(f"at: {at.isoformat()} is in the future (now {now.isoformat()})")
    try:
        return LifecycleEvent(
            event_id=uuid.uuid4().hex,
            kind=kind,
            device_id=device_id,
            at=at,
            recorded_at=now,
            by=by,
            note=note,
        )
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from e


def register_views(
    app: faust.App,
    config: Any,
    twins: Any,
    commands_topic: Any,
    load: Callable[[str], DeviceState],
    *,
    audit_topic: Any,
    lifecycle_topic: Any,
    desk: CommandDesk,
) -> None:
    def local_views() -> list[dict[str, Any]]:
        views = []
        for key, value in list(twins.items()):
            if value:
                state = load(key.decode())
                views.append(twin_view(state.twin, state.open_alerts(), datetime.now(UTC)))
        return views

    async def gather(path: str, request: Any) -> list[dict[str, Any]]:
        """This worker's twins plus every other worker's (asked with ?scope=local, with the
        caller's credentials)."""
        me = URL(app.conf.canonical_url)
        hosts = {URL(h) for h in app.router.table_metadata(twins.name)} - {me}
        views = local_views()

        async def ask(host: URL) -> list[dict[str, Any]]:
            url = host.with_path(path).with_query(scope=LOCAL)
            async with app.http_client.get(url, headers=forwarded_headers(request)) as response:
                response.raise_for_status()
                body: list[dict[str, Any]] = orjson.loads(await response.read())
                return body

        for part in await asyncio.gather(*(ask(h) for h in hosts)):
            views.extend(part)
        return sorted(views, key=lambda v: str(v["device_id"]))

    def unknown(web: Any, device_id: str) -> Any:
        return web.json({"error": f"unknown device {device_id!r}"}, status=404)

    def owner_of(request: Any, device_id: str) -> URL | None:
        """The worker that owns the device, None if it is this one (or the request was
        forwarded here already); KeyError while no worker is known to own it."""
        if request.headers.get(FORWARDED):
            return None
        owner = URL(str(app.router.key_store(twins.name, device_id.encode())))
        return None if owner == URL(app.conf.canonical_url) else owner

    async def forward(web: Any, request: Any, owner: URL, body: bytes | None = None) -> Any:
        """Ask the owner the same request, with the caller's credentials and preconditions,
        and answer what it answers, its ``ETag`` with it (Faust's own routing drops request
        bodies and response headers)."""
        headers = {FORWARDED: "1", **forwarded_headers(request)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if "If-Match" in request.headers:
            headers["If-Match"] = request.headers["If-Match"]
        url = owner.with_path(request.path).with_query(request.query)
        async with app.http_client.request(
            request.method, url, data=body, headers=headers
        ) as response:
            kept = {k: response.headers[k] for k in ("ETag",) if k in response.headers}
            return web.bytes(
                await response.read(),
                status=response.status,
                content_type="application/json",
                headers=kept,
            )

    def no_owner(web: Any, device_id: str) -> Any:
        error = f"no worker owns {device_id!r} right now (partitions are being assigned)"
        return web.json({"error": error}, status=503)

    @app.page("/twins")
    class TwinList(faust.web.View):
        async def get(self, request: Any) -> Any:
            if request.query.get("scope") == LOCAL:
                return self.bytes(orjson.dumps(local_views()), content_type="application/json")
            views = await gather("/twins", request)
            return self.bytes(orjson.dumps(views), content_type="application/json")

    @app.page("/twins/{device_id}")
    class TwinDetail(faust.web.View):
        async def get(self, request: Any, device_id: str) -> Any:
            try:
                owner = owner_of(request, device_id)
            except KeyError:
                return no_owner(self, device_id)
            if owner is not None:
                return await forward(self, request, owner)
            if not twins.get(device_id.encode()):
                return unknown(self, device_id)
            state = load(device_id)
            view = twin_view(state.twin, state.open_alerts(), datetime.now(UTC))
            return self.bytes(
                orjson.dumps(view),
                content_type="application/json",
                headers={"ETag": etag(state.twin.version)},
            )

    async def lifecycle(
        web: Any, request: Any, device_id: str, kind: Literal["failure", "rebaseline"]
    ) -> Any:
        body = await request.read()
        try:
            owner = owner_of(request, device_id)
        except KeyError:
            return no_owner(web, device_id)
        if owner is not None:
            return await forward(web, request, owner, body)
        if not twins.get(device_id.encode()):
            return unknown(web, device_id)
        now = datetime.now(UTC)
        try:
            event = lifecycle_event(kind, device_id, body, by=principal_of(request).name, now=now)
        except ValueError as e:
            return web.json({"error": str(e)}, status=422)
        await lifecycle_topic.send(key=device_id.encode(), value=event.model_dump_json().encode())
        state = load(device_id)
        await audit(
            audit_topic,
            request,
            action="failure_recorded" if kind == "failure" else "rebaseline",
            device_id=device_id,
            device_type=state.twin.device_type,
            old={},
            new=event.model_dump(mode="json", include={"kind", "at", "note"}),
            subject=event.event_id,
            now=now,
        )
        return web.json(event.model_dump(mode="json"), status=202)

    @app.page("/twins/{device_id}/failures")
    class TwinFailures(faust.web.View):
        async def post(self, request: Any, device_id: str) -> Any:
            return await lifecycle(self, request, device_id, "failure")

    @app.page("/twins/{device_id}/rebaseline")
    class TwinRebaseline(faust.web.View):
        async def post(self, request: Any, device_id: str) -> Any:
            return await lifecycle(self, request, device_id, "rebaseline")

    @app.page("/twins/{device_id}/desired")
    class TwinDesired(faust.web.View):
        async def put(self, request: Any, device_id: str) -> Any:
            body = await request.read()
            try:
                owner = owner_of(request, device_id)
            except KeyError:
                return no_owner(self, device_id)
            if owner is not None:
                return await forward(self, request, owner, body)
            if not twins.get(device_id.encode()):
                return unknown(self, device_id)
            # The change travels as an event: the owner's commands agent checks it against the
            # twin and applies it (tables are written by agents), this PUT waits for its
            # verdict, and the bridge delivers the device's new desired document.
            state = load(device_id)
            verdict = await desk.put(
                device_id,
                state,
                body,
                if_match=request.headers.get("If-Match"),
                ttl_s=request.query.get("ttl_s"),
            )
            if verdict.status == 202:
                await audit(
                    audit_topic,
                    request,
                    action="set_desired",
                    device_id=device_id,
                    device_type=state.twin.device_type,
                    old=verdict.old,
                    new=verdict.new,
                    command_id=verdict.body["command_id"],
                    now=datetime.fromisoformat(verdict.body["issued_at"]),
                )
            return self.bytes(
                orjson.dumps(verdict.body),
                status=verdict.status,
                content_type="application/json",
                headers=verdict.headers,
            )
