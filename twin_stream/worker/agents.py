"""The worker's agents, one per Kafka topic it reads, and the heartbeat timer.

* ``telemetry_agent``: de-duplicate by seq, update the twin, score, predict, alert; produce
  ``scores``, ``predictions``, ``alerts`` and the twin's new view on ``twins``;
* ``status_agent`` / ``reported_agent``: connectivity and reported settings;
* ``commands_agent``: desired state set through the twin API or by an operator;
* ``dead_letter_agent``: count invalid payloads in the device's data-quality counters;
* ``heartbeats``: a timer that marks silent devices offline.

A record an agent cannot process is not dropped: it goes to the dead-letter topic with the
reason, in the bridge's dead-letter format (:func:`twin_stream.bridge.routing.dead_letter`), and
the device's ``invalid`` counter goes up (the dead-letter agent reads it back). That holds for a
record that is invalid (its field and rule: :func:`rejection_reason`), one without a device key,
and one whose processing failed for any other reason (a bug, a saved twin that does not
restore: :func:`failure_reason`, logged with its traceback); the agent goes on with the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from pydantic import ValidationError

from twin_stream.bridge.routing import dead_letter
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, mqtt_topic
from twin_stream.errors import PayloadRejected
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.processing import DeviceState, Outputs, twin_view

__all__ = ["Publisher", "WorkerAgents", "failure_reason", "register_agents", "rejection_reason"]

log = logging.getLogger(__name__)

#: What an agent does with one event: update the state, say what to produce (ValueError or
#: PayloadRejected if the record is invalid).
Apply = Callable[[DeviceState, Any, datetime], Outputs]


def rejection_reason(error: ValueError) -> str:
    """The dead letter's reason: the field and the rule, as the bridge writes them.

    >>> rejection_reason(ValueError("telemetry without a device_type"))
    '(payload): telemetry without a device_type [unprocessable]'
    """
    if isinstance(error, ValidationError) and error.error_count():
        first = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "(payload)"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        # The rule comes last, where the sink looks for it (its ``rule`` tag).
        return f"{field}: {first['msg']}{more} [{first['type']}]"
    return f"(payload): {' '.join(str(error).split())} [unprocessable]"


def failure_reason(error: Exception) -> str:
    """The dead letter's reason for a record whose processing failed for another reason than
    its content being invalid: the exception, under its own rule.

    >>> failure_reason(KeyError("motor_current"))
    "(worker): KeyError: 'motor_current' [processing_failed]"
    """
    message = " ".join(str(error).split())
    return f"(worker): {type(error).__name__}: {message} [processing_failed]"


def _device_id(key: bytes | None) -> str | None:
    """The device a record is keyed by; None for a record without a usable key."""
    if not key:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None


class Publisher:
    """Produces what one event made: scores, predictions, alerts, the twin's view, dead
    letters."""

    def __init__(self, topics: Mapping[str, Any]) -> None:
        self.topics = topics
        self._published: dict[str, int] = {}  # the twin version last published, per device

    async def publish(self, device_id: str, state: DeviceState, out: Outputs) -> None:
        key = device_id.encode()
        for score in out.scores:
            await self.topics["scores"].send(key=key, value=score.to_json())
        for prediction in out.predictions:
            await self.topics["predictions"].send(
                key=key, value=prediction.model_dump_json().encode()
            )
        for alert in out.alerts:
            await self.topics["alerts"].send(key=key, value=alert.model_dump_json().encode())
        # The twin's view goes out when something people look at changed: its version
        # (connectivity, settings, firmware), its alerts or its data-quality counters.
        if out.twin_changed and (
            out.alerts
            or out.outcome not in ("accepted", "reordered")
            or state.twin.version != self._published.get(device_id)
            or not out.scores
        ):
            self._published[device_id] = state.twin.version
            view = twin_view(state.twin, state.open_alerts(), datetime.now(UTC))
            await self.topics["twins"].send(key=key, value=orjson.dumps(view))

    async def dead_letter(
        self, kind: str, device_id: str | None, value: bytes, reason: str, now: datetime
    ) -> None:
        """Send a record of topic kind ``kind`` that the worker cannot process to the
        dead-letter topic. Its ``mqtt_topic`` is the one the device published it on; a
        command, which never came over MQTT, or a record without a device id names its Kafka
        topic instead."""
        source = self.topics[kind].get_topic_name()
        if kind in DEVICE_TO_PLATFORM and device_id is not None:
            try:
                source = mqtt_topic(device_id, kind)
            except PayloadRejected:
                pass  # a key that is no device id: keep the Kafka topic
        letter = dead_letter(source, value, reason, now, device_id)
        await self.topics["dlq"].send(key=letter.key, value=letter.value)


@dataclass(frozen=True)
class WorkerAgents:
    """The agents and the timer :func:`register_agents` added to an app."""

    telemetry: Any
    status: Any
    reported: Any
    commands: Any
    dead_letters: Any
    heartbeats: Any


def _offset(event: Any) -> str:
    return f"{event.message.topic}[{event.message.partition}]@{event.message.offset}"


def _telemetry(state: DeviceState, event: Any, now: datetime) -> Outputs:
    # The record's timestamp is when the bridge received the reading: the clock-skew check
    # compares the device's clock with it, so a backlog read late is not mistaken for a
    # device clock that is off.
    received = datetime.fromtimestamp(event.message.timestamp, UTC)
    return state.on_telemetry(event.value, now=now, received_at=received)


def _status(state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_status(event.value, now=now)


def _reported(state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_reported(event.value, now=now)


def _command(state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_command(event.value, now=now)


def register_agents(
    app: faust.App,
    topics: Mapping[str, Any],
    devices: DeviceCache,
    *,
    group: str,
    heartbeat_check_s: float,
) -> WorkerAgents:
    """Add the agents (named ``{group}.{kind}``) and the heartbeat timer to ``app``."""
    publisher = Publisher(topics)

    async def handle(kind: str, event: Any, apply: Apply) -> None:
        now = datetime.now(UTC)
        device_id = _device_id(event.key)
        if device_id is None:
            reason = "(key): a record without a device_id key [missing_key]"
            log.warning("dead-lettering a %s record at offset %s: %s", kind, _offset(event), reason)
            await publisher.dead_letter(kind, None, event.value, reason, now)
            return
        try:
            state = devices.load(device_id)
            out = apply(state, event, now)
        except (ValueError, PayloadRejected) as e:  # the record is invalid (pydantic's too)
            reason = e.reason if isinstance(e, PayloadRejected) else rejection_reason(e)
            log.warning(
                "dead-lettering a %s record of %s at offset %s: %s",
                kind,
                device_id,
                _offset(event),
                reason,
            )
            await publisher.dead_letter(kind, device_id, event.value, reason, now)
            return
        except Exception as e:  # anything else failed on this record: it alone is set aside
            reason = failure_reason(e)
            log.exception(
                "dead-lettering a %s record of %s at offset %s: processing failed",
                kind,
                device_id,
                _offset(event),
            )
            devices.forget(device_id)  # it may have stopped half-way through the state
            await publisher.dead_letter(kind, device_id, event.value, reason, now)
            return
        devices.save(device_id, state, out, reading=kind == "telemetry")
        await publisher.publish(device_id, state, out)

    @app.agent(topics["telemetry"], name=f"{group}.telemetry")
    async def telemetry_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("telemetry", event, _telemetry)

    @app.agent(topics["status"], name=f"{group}.status")
    async def status_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("status", event, _status)

    @app.agent(topics["reported"], name=f"{group}.reported")
    async def reported_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("reported", event, _reported)

    @app.agent(topics["commands"], name=f"{group}.commands")
    async def commands_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("commands", event, _command)

    @app.agent(topics["dlq"], name=f"{group}.dlq")
    async def dead_letter_agent(stream: Any) -> None:
        async for event in stream.events():
            device_id = _device_id(event.key)
            if device_id is None:  # a dead letter of no known device: nothing to count
                continue
            try:
                state = devices.load(device_id)
                out = state.on_dead_letter()
            except Exception:  # the letter stays on the topic (and in the sink): not lost
                log.exception(
                    "dead letter of %s at offset %s not counted", device_id, _offset(event)
                )
                devices.forget(device_id)
                continue
            devices.save(device_id, state, out, reading=False)
            await publisher.publish(device_id, state, out)  # the invalid counter moved

    @app.timer(interval=heartbeat_check_s)
    async def heartbeats() -> None:
        now = datetime.now(UTC)
        for device_id, state in devices.items():
            out = state.on_heartbeat(now=now)
            if out.twin_changed:  # the table is updated with the device's next event
                await publisher.publish(device_id, state, out)

    return WorkerAgents(
        telemetry=telemetry_agent,
        status=status_agent,
        reported=reported_agent,
        commands=commands_agent,
        dead_letters=dead_letter_agent,
        heartbeats=heartbeats,
    )
