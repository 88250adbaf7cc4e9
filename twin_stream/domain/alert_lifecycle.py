"""People's part of an alert's life, in the spirit of IEC 60601-1-8: acknowledge it, shelve it
for a while, and be reminded of a critical one nobody has acknowledged. Pure: no I/O, no clock
of its own (every time is given).

The alert policy (:class:`~twin_stream.domain.alerting.AlertPolicy`, in the device's monitor,
checkpointed with it) owns a device's open alerts and calls these transitions; each returns the
alert's next event (same ``alert_id``, next ``revision``), which the worker sends on
``twin.alerts`` like any other, so the sink stores the whole life and Grafana sees it.

* ``acknowledged`` (:func:`acknowledge`): someone has seen it and is on it. It stays open, is
  shown as acknowledged, and stops paging and re-notifying: :attr:`Alert.pages
  <twin_stream.domain.events.Alert.pages>` is False from then on, unless it escalates past the
  severity it was acknowledged at (:func:`escalation`: a warning acknowledged that turns
  critical pages again: a new, worse hazard is not what was acknowledged).
* ``shelved`` (:func:`shelve`): hidden and silent for a while (at most a maximum the worker
  sets, e.g. 8 h). When the time is up it returns, ``unshelved`` (:func:`tick`): shown again,
  and paging again if it still should (not acknowledged, still warning or critical).
* ``renotified`` (:func:`tick`): a critical alert that pages and nobody acknowledged pages again
  every N minutes (the worker's setting), until it is acknowledged, shelved or resolved.
* a resolved alert cannot be acknowledged or shelved (a conflict: :class:`Refused`).

Times: the person's actions and the re-notification clock are wall-clock times; an alert's
events carry the device's clock. So that the latest event of an alert is also the latest in time
(the sink's queries take the last point of each alert), a lifecycle event's ``ts`` is after the
alert's previous event's (by a millisecond at least: the sink's precision, so that it is a
point of its own).

>>> from datetime import datetime, timedelta, timezone
>>> t = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
>>> a = Alert(alert_id="a1", device_id="pump-0001", device_type="infusion_pump",
...           kind="predicted_failure", severity="critical", state="open", opened_at=t, ts=t,
...           summary="predicted failure: motor_current ...", detector_version="d")
>>> a.pages, status(a)
(True, 'open')
>>> paged = None
>>> event, paged = tick(a, paged, t, renotify_every=timedelta(minutes=15))  # first seen
>>> event is None, paged == (0, t)
(True, True)
>>> again, paged = tick(a, paged, t + timedelta(minutes=15), timedelta(minutes=15))
>>> again.state, again.revision, again.renotified, again.pages
('renotified', 1, 1, True)
>>> ack = acknowledge(again, by="alice", at=t + timedelta(minutes=16), note="on my way")
>>> ack.state, ack.revision, ack.pages, status(ack), ack.ack.by
('acknowledged', 2, False, 'acknowledged', 'alice')
>>> tick(ack, paged, t + timedelta(hours=2), timedelta(minutes=15))[0] is None  # no more
True
>>> acknowledge(ack, by="bob", at=t + timedelta(minutes=17)).reason
'alert a1 is already acknowledged (by alice at 2026-01-01T12:16:00+00:00)'
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal, get_args

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from twin_stream.domain.events import Alert, AlertAck, AlertShelf, Severity
from twin_stream.domain.topics import DEVICE_ID_PATTERN

__all__ = [
    "HISTORY_PER_DEVICE",
    "LIFECYCLE_STATES",
    "MAX_NOTE",
    "STATUSES",
    "AlertAction",
    "AlertStatus",
    "Refused",
    "acknowledge",
    "apply",
    "escalation",
    "recall",
    "remember",
    "renotify",
    "shelve",
    "status",
    "tick",
    "unshelve",
]

#: What people see an alert as: its status, from its latest event.
AlertStatus = Literal["open", "acknowledged", "shelved", "resolved"]
STATUSES: Final[tuple[AlertStatus, ...]] = get_args(AlertStatus)
#: The events this module makes (the others are the alert policy's).
LIFECYCLE_STATES: Final = frozenset({"acknowledged", "shelved", "unshelved", "renotified"})
#: Resolved alerts each device keeps (their last event): ``GET /alerts`` shows them as
#: ``resolved``; the sink keeps every event for longer. Kept compressed (:func:`remember`), in
#: about 100 bytes each, since they are saved with the device's checkpoints.
HISTORY_PER_DEVICE: Final = 50
#: The longest note a person may attach to an acknowledgement or a shelving.
MAX_NOTE: Final = 1000

_RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "critical": 2}
#: The least a lifecycle event comes after the alert's previous event (the sink's precision).
_AFTER: Final = timedelta(milliseconds=1)

Note = Annotated[str, Field(max_length=MAX_NOTE)]


class AlertAction(BaseModel):
    """A person's action on an alert, on ``twin.alert_actions`` (keyed by the device): the twin
    API writes it, the worker that owns the device applies it (:func:`apply`) and sends the
    alert's next event.

    >>> from datetime import timezone
    >>> from pydantic import ValidationError
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> try:
    ...     AlertAction(action_id="x" * 32, alert_id="a1", device_id="pump-0001",
    ...                 action="shelve", by="alice", at=t)
    ... except ValidationError as e:
    ...     print(e.errors()[0]["msg"])
    Value error, shelve needs minutes > 0
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    action_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{8,64}$")]
    alert_id: Annotated[str, Field(min_length=1, max_length=128)]
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    action: Literal["ack", "shelve"]
    by: str  # the caller's identity (the API token's name)
    role: str | None = None
    at: AwareDatetime  # when the API accepted it (wall clock)
    note: Note | None = None
    minutes: Annotated[float, Field(gt=0)] | None = None  # shelve only

    @model_validator(mode="after")
    def _minutes_for_shelve_only(self) -> AlertAction:
        if self.action == "shelve" and self.minutes is None:
            raise ValueError("shelve needs minutes > 0")
        if self.action == "ack" and self.minutes is not None:
            raise ValueError("ack takes no minutes")
        return self


@dataclass(frozen=True)
class Refused:
    """Why an action was not applied: ``unknown`` (no such alert), ``conflict`` (its state does
    not allow it: resolved, already acknowledged), ``invalid`` (e.g. shelved too long)."""

    kind: Literal["unknown", "conflict", "invalid"]
    reason: str


def status(alert: Alert) -> AlertStatus:
    """What an alert is now, from its latest event: shelved hides an acknowledged alert too.

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> a = Alert(alert_id="a1", device_id="pump-0001", device_type="infusion_pump",
    ...           kind="anomaly", severity="warning", state="updated", opened_at=t, ts=t,
    ...           summary="s", detector_version="d")
    >>> status(a), status(a.model_copy(update={"state": "resolved"}))
    ('open', 'resolved')
    """
    if alert.state == "resolved":
        return "resolved"
    if alert.shelf is not None:
        return "shelved"
    if alert.ack is not None:
        return "acknowledged"
    return "open"


def _next(alert: Alert, at: datetime, state: str, **update: Any) -> Alert:
    """The alert's next event: next revision, at ``at`` (after its previous event)."""
    ts = max(at, alert.ts + _AFTER)
    return alert.model_copy(
        update={"state": state, "revision": alert.revision + 1, "ts": ts, **update}
    )


def acknowledge(
    alert: Alert, *, by: str, at: datetime, note: str | None = None, action_id: str | None = None
) -> Alert | Refused:
    """The ``acknowledged`` event, or why not (resolved, or acknowledged already)."""
    if alert.state == "resolved":
        return Refused("conflict", f"alert {alert.alert_id} is resolved")
    if alert.ack is not None:
        return Refused(
            "conflict",
            f"alert {alert.alert_id} is already acknowledged "
            f"(by {alert.ack.by} at {alert.ack.at.isoformat()})",
        )
    ack = AlertAck(by=by, at=at, note=note, severity=alert.severity, action_id=action_id)
    return _next(alert, at, "acknowledged", ack=ack)


def shelve(
    alert: Alert,
    *,
    by: str,
    at: datetime,
    minutes: float,
    max_minutes: float,
    note: str | None = None,
    action_id: str | None = None,
) -> Alert | Refused:
    """The ``shelved`` event (shelved again: the new time replaces the old), or why not."""
    if minutes <= 0 or minutes > max_minutes:
        return Refused(
            "invalid", f"minutes: {minutes:g} is not in (0, {max_minutes:g}] (the longest shelf)"
        )
    if alert.state == "resolved":
        return Refused("conflict", f"alert {alert.alert_id} is resolved")
    if action_id is not None and alert.shelf is not None and alert.shelf.action_id == action_id:
        return Refused("conflict", f"alert {alert.alert_id} is already shelved by this action")
    until = at + timedelta(minutes=minutes)
    shelf = AlertShelf(by=by, at=at, until=until, note=note, action_id=action_id)
    return _next(alert, at, "shelved", shelf=shelf)


def apply(alert: Alert, action: AlertAction, *, max_shelve_minutes: float) -> Alert | Refused:
    """A person's action on ``alert`` (its latest event): the next event, or why not."""
    if action.action == "ack":
        return acknowledge(
            alert, by=action.by, at=action.at, note=action.note, action_id=action.action_id
        )
    assert action.minutes is not None  # checked by AlertAction
    return shelve(
        alert,
        by=action.by,
        at=action.at,
        minutes=action.minutes,
        max_minutes=max_shelve_minutes,
        note=action.note,
        action_id=action.action_id,
    )


def unshelve(alert: Alert, at: datetime) -> Alert:
    """The ``unshelved`` event: the shelf time is over, the alert shows (and pages) again."""
    return _next(alert, at, "unshelved", shelf=None)


def renotify(alert: Alert, at: datetime) -> Alert:
    """The ``renotified`` event: an unacknowledged critical alert pages again."""
    return _next(alert, at, "renotified", renotified=alert.renotified + 1)


def escalation(last: Alert, severity: Severity) -> dict[str, Any]:
    """What an update of ``last`` to ``severity`` changes in its people's part: an
    acknowledgement holds for the severity it was given at; past it, the alert pages again.

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> a = Alert(alert_id="a1", device_id="pump-0001", device_type="infusion_pump",
    ...           kind="anomaly", severity="warning", state="open", opened_at=t, ts=t,
    ...           summary="s", detector_version="d")
    >>> acked = acknowledge(a, by="alice", at=t)
    >>> escalation(acked, "warning"), escalation(acked, "critical")
    ({}, {'ack': None})
    """
    if last.ack is not None and _RANK[severity] > _RANK[last.ack.severity]:
        return {"ack": None}
    return {}


_HISTORY: Final[TypeAdapter[list[Alert]]] = TypeAdapter(list[Alert])


def remember(history: bytes, resolved: Alert, keep: int = HISTORY_PER_DEVICE) -> bytes:
    """A device's history of resolved alerts (``b""`` when empty) with ``resolved`` added and
    only the last ``keep`` kept: their JSON, compressed together (a device's alerts have much
    in common), so that the history costs its checkpoints little.

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> a = Alert(alert_id="a0", device_id="pump-0001", device_type="infusion_pump",
    ...           kind="offline", severity="warning", state="resolved", opened_at=t, ts=t,
    ...           summary="resolved (device back online): device offline", detector_version="d")
    >>> history = b""
    >>> for i in range(60):
    ...     history = remember(history, a.model_copy(update={"alert_id": f"a{i}"}))
    >>> [x.alert_id for x in recall(history)][:3], len(recall(history)), len(history) < 2000
    (['a59', 'a58', 'a57'], 50, True)
    """
    kept = orjson.loads(zlib.decompress(history)) if history else []
    kept.append(orjson.loads(resolved.model_dump_json()))
    return zlib.compress(orjson.dumps(kept[-keep:]), 6)


def recall(history: bytes) -> list[Alert]:
    """The resolved alerts of a history made by :func:`remember`, newest first."""
    if not history:
        return []
    return _HISTORY.validate_json(zlib.decompress(history))[::-1]


#: The last paging event of an alert the clock has seen: (its revision, the wall-clock time).
Paged = tuple[int, datetime]


def tick(
    alert: Alert, paged: Paged | None, now: datetime, renotify_every: timedelta | None
) -> tuple[Alert | None, Paged | None]:
    """The clock's turn for one open alert (its latest event) at wall-clock ``now``: the event
    it makes (``unshelved`` once its shelf time is over; ``renotified`` for a critical alert
    that has paged for ``renotify_every`` without being acknowledged, shelved or resolved), or
    None; and the alert's new ``paged`` mark.

    The first time the clock sees an event that pages (the policy's own ``open``/``updated``,
    made on the device's clock) it only marks it: the re-notification interval runs from then.
    ``renotify_every`` None turns re-notification off.
    """
    if alert.state == "resolved":
        return None, paged
    if alert.shelf is not None:
        if now < alert.shelf.until:
            return None, paged
        back = unshelve(alert, now)
        return back, ((back.revision, now) if back.pages else paged)
    if renotify_every is None or not alert.pages or alert.severity != "critical":
        return None, paged
    if paged is None or paged[0] != alert.revision:
        return None, (alert.revision, now)  # a new page: the interval starts now
    if now - paged[1] < renotify_every:
        return None, paged
    again = renotify(alert, now)
    return again, (again.revision, now)
