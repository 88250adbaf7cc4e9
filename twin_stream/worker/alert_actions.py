"""The worker's side of people's part in an alert's life
(:mod:`twin_stream.domain.alert_lifecycle`): an agent that applies acknowledgements and
shelvings, and a clock that brings shelved alerts back and re-notifies unacknowledged critical
ones.

* ``alert_actions_agent`` reads ``twin.alert_actions`` (keyed by device, like every topic, so
  the worker that owns the device gets its actions: tables are written by agents, never by
  a web view). It applies each action to the device's alert policy (in its monitor), sends the
  alert's next event on ``twin.alerts`` and the twin's view, and checkpoints the device at once:
  a person's action must not be undone by a restart. An action the policy refuses (the alert
  resolved or was acknowledged meanwhile: the API checked it a moment before) is logged and
  dropped; an action that is no record at all goes to the dead-letter topic.
* ``alert_clock`` (every ``check_s`` seconds, on the wall clock): for each device this worker
  has in memory, shelves whose time is over end (``unshelved``: shown, and paging again if it
  still should) and critical alerts paging unacknowledged for ``renotify_every`` are
  re-notified (``renotified``). The events are sent at once; the policy's new state is saved
  with the device's next checkpoint (Faust tables are written while handling an event), so a
  worker that dies before may send a re-notification again: at least once, like every event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from twin_stream.bridge.routing import rejection_reason
from twin_stream.domain.alert_lifecycle import AlertAction, Refused
from twin_stream.domain.events import Alert
from twin_stream.errors import PayloadRejected
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.processing import DeviceState, Outputs
from twin_stream.worker.publishing import DeviceBatch, Publisher, failure_reason

__all__ = ["AlertAgents", "apply_action", "register_alert_agents"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertAgents:
    """The agent and the timer :func:`register_alert_agents` added to an app."""

    actions: Any
    clock: Any


def apply_action(
    state: DeviceState, action: AlertAction, *, max_shelve_minutes: float
) -> Alert | Refused:
    """Apply a person's action to the device's alert policy: the alert's next event, or why
    not."""
    if state.monitor is None:  # never scored: it has no alerts
        return Refused("unknown", f"no alert {action.alert_id} on {action.device_id}")
    return state.monitor.policy.act(action, max_shelve_minutes=max_shelve_minutes)


def _checkpoint_now(devices: DeviceCache, device_id: str, state: DeviceState) -> None:
    """Save the device's twin and models now, as a due checkpoint does (the cache's own
    bookkeeping), instead of at its next reading's checkpoint."""
    state.events_since_checkpoint = max(state.events_since_checkpoint, devices.every)
    devices.save(device_id, state, Outputs(twin_changed=True), reading=True)


def register_alert_agents(
    app: faust.App,
    topics: Mapping[str, Any],
    devices: DeviceCache,
    *,
    group: str,
    renotify_every: timedelta | None,
    max_shelve_minutes: float,
    check_s: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AlertAgents:
    """Add the alert-actions agent (``{group}.alert_actions``) and the alert clock to ``app``.

    ``renotify_every`` None turns re-notification off; ``max_shelve_minutes`` is the longest
    shelf; the clock runs every ``check_s`` seconds and reads the time from ``clock`` (the
    wall clock; the tests turn one of their own)."""
    publisher = Publisher(topics)

    async def handle(event: Any) -> None:
        now = datetime.now(UTC)
        device_id = event.key.decode(errors="replace") if event.key else None
        try:
            action = AlertAction.model_validate_json(event.value)
            if action.device_id != device_id:
                raise ValueError(f"an action on {action.device_id} keyed by {device_id!r}")
            state = devices.load(action.device_id)
            result = apply_action(state, action, max_shelve_minutes=max_shelve_minutes)
        except (ValueError, PayloadRejected) as e:  # not an action (pydantic's errors too)
            reason = e.reason if isinstance(e, PayloadRejected) else rejection_reason(e)
            reason = await publisher.dead_letter(
                "alert_actions", device_id, event.value, reason, now
            )
            log.warning("dead-lettered an alert action of %s: %s", device_id, reason)
            return
        except Exception as e:  # anything else: this record alone is set aside
            log.exception("dead-lettering an alert action of %s: processing failed", device_id)
            if device_id is not None:
                devices.forget(device_id)
            await publisher.dead_letter(
                "alert_actions", device_id, event.value, failure_reason(e), now
            )
            return
        if isinstance(result, Refused):
            log.info("alert action %s not applied: %s", action.action_id, result.reason)
            return
        _checkpoint_now(devices, action.device_id, state)
        batch = DeviceBatch(state, alerts=[result], twin_due=True)
        await publisher.publish(action.device_id, batch)

    @app.agent(topics["alert_actions"], name=f"{group}.alert_actions")
    async def alert_actions_agent(stream: Any) -> None:
        async for event in stream.events():
            async with devices.lock:  # the device's alert events in the order they happened
                await handle(event)

    @app.timer(interval=check_s)
    async def alert_clock() -> None:
        async with devices.lock:
            await tick()

    async def tick() -> None:
        now = clock()
        for device_id, state in devices.items():
            if state.monitor is None:
                continue
            events = state.monitor.policy.on_clock(now, renotify_every)
            if events:
                await publisher.publish(device_id, DeviceBatch(state, alerts=events, twin_due=True))

    return AlertAgents(actions=alert_actions_agent, clock=alert_clock)
