"""The twin API's alerts: read them with their history, acknowledge them, shelve them.

* ``GET /alerts?state=open|acknowledged|shelved|resolved&device=&since=`` (role ``viewer``):
  the latest event of every alert of every device, gathered from every worker, with its
  ``status`` (:func:`twin_stream.domain.alert_lifecycle.status`), newest first. ``state`` takes
  one status or several (comma-separated; default: all but ``resolved``); ``resolved`` shows
  each device's history (its last :data:`~twin_stream.domain.alert_lifecycle.HISTORY_PER_DEVICE`
  resolved alerts; the sink keeps every event for longer). ``device`` keeps one device's;
  ``since`` (ISO 8601 with a time zone) keeps those open at some time from then on (not
  resolved, or resolved since). 422 for a bad parameter.
* ``GET /alerts/{alert_id}`` (``viewer``): one alert, wherever it is; 404 if none.
* ``POST /alerts/{alert_id}/ack`` (``operator``), body ``{"note": "..."}`` (optional), and
  ``POST /alerts/{alert_id}/shelve``, body ``{"minutes": N, "note": "..."}``, ``N`` at most
  the worker's longest shelf (``TWIN_WORKER__ALERT_MAX_SHELVE_MIN``; over it: 422). Who acts is
  the caller (its token's name). 404 for an unknown alert, 409 for a resolved one (or acking
  one acknowledged already), 422 for a bad body; otherwise 202 with the action and the alert as
  it was, and the action recorded in the audit trail (``alert_ack``, ``alert_shelve``).

Which device an alert belongs to: an alert id (a uuid) does not say, so the route takes only the
alert id and the device is looked up among the alerts of the worker that owns it: this worker's
first, then every other worker's (``GET /alerts/{id}?scope=local``, with the caller's
credentials). The change itself is not made here: the action goes on ``twin.alert_actions``,
keyed by the device, and the owner's agent applies it (:mod:`twin_stream.worker.alert_actions`)
and sends the alert's next event: ``GET /alerts`` shows it a moment later.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import faust
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from yarl import URL

from twin_stream.domain import alert_lifecycle as lifecycle
from twin_stream.domain.alert_lifecycle import STATUSES, AlertAction, AlertStatus, Refused
from twin_stream.domain.events import Alert
from twin_stream.domain.topics import DEVICE_ID_PATTERN
from twin_stream.worker.audit_views import audit
from twin_stream.worker.processing import DeviceState
from twin_stream.worker.web_auth import forwarded_headers, principal_of

__all__ = ["AckBody", "ShelveBody", "alert_json", "register_alert_views"]

LOCAL: Final = "local"  # ?scope=local: only this worker's alerts (used when gathering)
#: Without ?state=: every alert that is not resolved.
DEFAULT_STATES: Final[frozenset[AlertStatus]] = frozenset({"open", "acknowledged", "shelved"})
_DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN)
_REFUSAL_STATUS: Final = {"unknown": 404, "conflict": 409, "invalid": 422}

Note = Annotated[str, Field(max_length=lifecycle.MAX_NOTE)]


class AckBody(BaseModel):
    """The body of ``POST /alerts/{id}/ack`` (an empty body is an empty note)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    note: Note | None = None


class ShelveBody(BaseModel):
    """The body of ``POST /alerts/{id}/shelve``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    minutes: Annotated[float, Field(gt=0)]
    note: Note | None = None


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the API answers it: its latest event and its ``status``."""
    return {**alert.model_dump(mode="json"), "status": lifecycle.status(alert)}


class _Filters:
    """The query parameters of ``GET /alerts``; ValueError names a bad one."""

    def __init__(self, query: Any) -> None:
        wanted = query.get("state")
        if wanted is None or wanted == "":
            self.states: frozenset[str] = DEFAULT_STATES
        else:
            states = {s.strip() for s in wanted.split(",")}
            unknown = sorted(states - set(STATUSES))
            if unknown:
                raise ValueError(f"state: {unknown[0]!r} is not one of {', '.join(STATUSES)}")
            self.states = frozenset(states)
        self.device: str | None = query.get("device") or None
        if self.device is not None and not _DEVICE_ID_RE.match(self.device):
            raise ValueError(f"device: {self.device!r} is not a device id")
        since = query.get("since")
        self.since: datetime | None = None
        if since:
            # A "+" in a query string arrives as a space: read it back as the "+" it was.
            text = since.strip().replace(" ", "+").replace("Z", "+00:00")
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError as e:
                raise ValueError(f"since: {since!r} is not an ISO 8601 time ({e})") from e
            if parsed.tzinfo is None:
                raise ValueError("since: needs a time zone (e.g. 2026-11-26T12:00:00Z)")
            self.since = parsed

    def keep(self, alert: Alert) -> bool:
        return (
            lifecycle.status(alert) in self.states
            and (self.device is None or alert.device_id == self.device)
            and (self.since is None or alert.state != "resolved" or alert.ts >= self.since)
        )


def _newest_first(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(a: dict[str, Any]) -> tuple[datetime, str]:
        return datetime.fromisoformat(str(a["ts"]).replace("Z", "+00:00")), str(a["alert_id"])

    return sorted(alerts, key=key, reverse=True)


def _invalid(web: Any, error: str, details: Any = None) -> Any:
    body: dict[str, Any] = {"error": error}
    if details is not None:
        body["details"] = details
    return web.json(body, status=422)


def register_alert_views(
    app: faust.App,
    twins: Any,
    load: Callable[[str], DeviceState],
    *,
    actions_topic: Any,
    audit_topic: Any,
    max_shelve_minutes: float,
) -> None:
    """Add ``/alerts``, ``/alerts/{alert_id}`` and its ``ack`` and ``shelve`` to the twin API.

    ``load`` gives a device's state for reading (never cached by a worker that does not own
    it); ``max_shelve_minutes`` is the longest shelf."""

    def local_alerts(device: str | None = None) -> list[Alert]:
        alerts: list[Alert] = []
        keys = [device.encode()] if device is not None else [k for k, _ in list(twins.items())]
        for key in keys:
            if twins.get(key):
                state = load(key.decode())
                if state.monitor is not None:
                    alerts += state.monitor.policy.alerts()
        return alerts

    def others() -> set[URL]:
        me = URL(app.conf.canonical_url)
        return {URL(h) for h in app.router.table_metadata(twins.name)} - {me}

    async def ask(host: URL, path: str, query: dict[str, str], request: Any) -> tuple[int, Any]:
        """Another worker's answer about its own alerts (with the caller's credentials)."""
        url = host.with_path(path).with_query({**query, "scope": LOCAL})
        async with app.http_client.get(url, headers=forwarded_headers(request)) as response:
            raw = await response.read()
            try:
                return response.status, orjson.loads(raw or b"null")
            except orjson.JSONDecodeError:
                return 502 if response.status == 200 else response.status, None

    async def locate(alert_id: str, request: Any) -> Alert | None:
        """The latest event of an alert: this worker's, or the worker's that has it."""
        here = next((a for a in local_alerts() if a.alert_id == alert_id), None)
        if here is not None or request.query.get("scope") == LOCAL:
            return here
        path = f"/alerts/{alert_id}"
        for status, body in await asyncio.gather(*(ask(h, path, {}, request) for h in others())):
            if status == 200:
                return Alert.model_validate({k: v for k, v in body.items() if k != "status"})
        return None

    def unknown(web: Any, alert_id: str) -> Any:
        return web.json({"error": f"unknown alert {alert_id!r}"}, status=404)

    @app.page("/alerts")
    class AlertList(faust.web.View):
        async def get(self, request: Any) -> Any:
            try:
                filters = _Filters(request.query)
            except ValueError as e:
                return _invalid(self, str(e))
            found = [alert_json(a) for a in local_alerts(filters.device) if filters.keep(a)]
            if request.query.get("scope") != LOCAL:
                query = {k: v for k, v in request.query.items() if k != "scope"}
                for status, body in await asyncio.gather(
                    *(ask(h, "/alerts", query, request) for h in others())
                ):
                    if status != 200:
                        return self.json(
                            {"error": f"a worker answered {status} while gathering alerts"},
                            status=502,
                        )
                    found += body
            return self.bytes(orjson.dumps(_newest_first(found)), content_type="application/json")

    @app.page("/alerts/{alert_id}")
    class AlertDetail(faust.web.View):
        async def get(self, request: Any, alert_id: str) -> Any:
            alert = await locate(alert_id, request)
            if alert is None:
                return unknown(self, alert_id)
            return self.bytes(orjson.dumps(alert_json(alert)), content_type="application/json")

    async def act(web: Any, request: Any, alert_id: str, verb: str) -> Any:
        """Check the action, send it to the device's owner, record it; 202 with it."""
        raw = await request.read()
        try:
            body: AckBody | ShelveBody = (
                AckBody.model_validate_json(raw or b"{}")
                if verb == "ack"
                else ShelveBody.model_validate_json(raw or b"{}")
            )
        except ValidationError as e:
            return _invalid(
                web,
                f"invalid {verb} body",
                e.errors(include_url=False, include_input=False, include_context=False),
            )
        minutes = body.minutes if isinstance(body, ShelveBody) else None
        if minutes is not None and minutes > max_shelve_minutes:
            return _invalid(
                web,
                f"minutes: {minutes:g} is over the longest shelf, {max_shelve_minutes:g} minutes",
            )
        alert = await locate(alert_id, request)
        if alert is None:
            return unknown(web, alert_id)
        principal = principal_of(request)
        action = AlertAction(
            action_id=uuid.uuid4().hex,
            alert_id=alert_id,
            device_id=alert.device_id,
            action="ack" if verb == "ack" else "shelve",
            by=principal.name,
            role=principal.role,
            at=datetime.now(UTC),
            note=body.note,
            minutes=minutes,
        )
        # The owner checks again when it applies it; this answers the caller now.
        after = lifecycle.apply(alert, action, max_shelve_minutes=max_shelve_minutes)
        if isinstance(after, Refused):
            return web.json({"error": after.reason}, status=_REFUSAL_STATUS[after.kind])
        key = alert.device_id.encode()
        await actions_topic.send(key=key, value=action.model_dump_json().encode())
        new: dict[str, Any] = {"status": lifecycle.status(after), "action_id": action.action_id}
        if action.note is not None:
            new["note"] = action.note
        if after.shelf is not None and verb == "shelve":
            new |= {"minutes": minutes, "until": after.shelf.until.isoformat()}
        await audit(
            audit_topic,
            request,
            action=f"alert_{verb}",
            device_id=alert.device_id,
            device_type=alert.device_type,
            old={"status": lifecycle.status(alert)},
            new=new,
            subject=alert_id,
            now=action.at,
        )
        answer = {"action": action.model_dump(mode="json"), "alert": alert_json(alert)}
        return web.bytes(orjson.dumps(answer), status=202, content_type="application/json")

    @app.page("/alerts/{alert_id}/ack")
    class AlertAckView(faust.web.View):
        async def post(self, request: Any, alert_id: str) -> Any:
            return await act(self, request, alert_id, "ack")

    @app.page("/alerts/{alert_id}/shelve")
    class AlertShelveView(faust.web.View):
        async def post(self, request: Any, alert_id: str) -> Any:
            return await act(self, request, alert_id, "shelve")
