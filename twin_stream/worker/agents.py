"""The worker's agents, one per Kafka topic it reads, and the heartbeat timer.

* ``telemetry_agent``: de-duplicate by seq, update the twin, score, predict, alert; produce
  ``scores``, ``predictions``, ``alerts`` and the twin's new view on ``twins``. It works in
  micro-batches (``stream.take_events``): per device and batch it sends one scores record (a
  JSON array, :mod:`twin_stream.domain.batches`), the latest prediction of each signal and the
  twin's view once, and every alert event. Faust acknowledges a batch's offsets only after the
  batch was handled and its records handed to the producer (at-least-once);
* ``status_agent`` / ``reported_agent``: connectivity and reported settings;
* ``commands_agent``: desired state set through the twin API or by an operator, checked
  against the twin (If-Match, the type's ranges: :mod:`twin_stream.worker.commands`) and merged
  into the device's whole desired document, produced on ``desired`` for the bridge;
* ``acks_agent``: the devices' answers to those documents: each command's status, and a new
  document without the changes a device rejected;
* ``dead_letter_agent``: count invalid payloads in the device's data-quality counters;
* ``heartbeats``: a timer that sends a missed-heartbeat notice to the status topic for a
  silent device (its owner's status agent marks it offline, as for a will) and expires
  commands not applied in time (their changes leave the desired document).

A record an agent cannot process is not dropped: it goes to the dead-letter topic with the
reason, in the bridge's dead-letter format (:func:`twin_stream.bridge.routing.dead_letter`), and
the device's ``invalid`` counter goes up (the dead-letter agent reads it back). That holds for a
record that is invalid (its field and rule: :func:`rejection_reason`), one without a device key,
and one whose processing failed for any other reason (a bug, a saved twin that does not
restore: :func:`failure_reason`, logged with its traceback); the agent goes on with the next.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.streams import _current_event

from twin_stream.bridge.routing import dead_letter, rejection_reason
from twin_stream.domain.batches import encode_scores
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.events import Alert, Command, FleetLesson, PredictionRecord, ScoreRecord
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, mqtt_topic
from twin_stream.errors import PayloadRejected
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.commands import CommandDesk
from twin_stream.worker.processing import DeviceState, Outputs, twin_view

__all__ = [
    "DeviceBatch",
    "Publisher",
    "WorkerAgents",
    "failure_reason",
    "register_agents",
    "rejection_reason",
]

log = logging.getLogger(__name__)

#: What an agent does with one event: update the state, say what to produce (ValueError or
#: PayloadRejected if the record is invalid).
Apply = Callable[[DeviceState, Any, datetime], Outputs]


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


@dataclass
class DeviceBatch:
    """What one device's events in one micro-batch made, to be produced once."""

    state: DeviceState
    scores: list[ScoreRecord] = field(default_factory=list)
    predictions: dict[str, PredictionRecord] = field(default_factory=dict)  # the latest per signal
    alerts: list[Alert] = field(default_factory=list)
    twin_due: bool = False
    documents: list[Command] = field(default_factory=list)  # desired documents, in order
    lessons: list[FleetLesson] = field(default_factory=list)  # for the fleet topic
    #: Whether any event changed the twin, and the device's last event (its checkpoint is
    #: written in that event's partition, once the batch's outputs are produced).
    twin_changed: bool = False
    last_event: Any = None

    def add(self, out: Outputs) -> None:
        self.twin_changed = self.twin_changed or out.twin_changed
        self.scores += out.scores
        self.documents += out.documents
        self.lessons += out.lessons
        for prediction in out.predictions:
            self.predictions[prediction.metric] = prediction
        self.alerts += out.alerts
        # The twin's view goes out when something people look at changed: its alerts, its
        # data-quality counters (a duplicate, a gap...), or anything but a plain reading.
        self.twin_due = self.twin_due or (
            out.twin_changed
            and (bool(out.alerts) or out.outcome not in ("accepted", "reordered") or not out.scores)
        )


class Publisher:
    """Produces what a batch of events made: scores, predictions, alerts, the twin's view,
    dead letters."""

    def __init__(self, topics: Mapping[str, Any]) -> None:
        self.topics = topics
        self._published: dict[str, int] = {}  # the twin version last published, per device

    async def publish(self, device_id: str, batch: DeviceBatch) -> None:
        key = device_id.encode()
        if batch.scores:
            await self.topics["scores"].send(key=key, value=encode_scores(batch.scores))
        for prediction in batch.predictions.values():
            await self.topics["predictions"].send(key=key, value=prediction.to_json())
        for alert in batch.alerts:
            await self.topics["alerts"].send(key=key, value=alert.model_dump_json().encode())
        for document in batch.documents:
            await self.topics["desired"].send(key=key, value=document.model_dump_json().encode())
        for lesson in batch.lessons:
            await self.topics["fleet"].send(key=lesson.key, value=lesson.model_dump_json().encode())
        state = batch.state
        if batch.twin_due or state.twin.version != self._published.get(device_id, -1):
            self._published[device_id] = state.twin.version
            view = twin_view(state.twin, state.open_alerts(), datetime.now(UTC))
            await self.topics["twins"].send(key=key, value=orjson.dumps(view))

    async def dead_letter(
        self, kind: str, device_id: str | None, value: bytes, reason: str, now: datetime
    ) -> str:
        """Send a record of topic kind ``kind`` that the worker cannot process to the
        dead-letter topic. Its ``mqtt_topic`` is the one the device published it on; a
        command, which never came over MQTT, or a record without a device id names its Kafka
        topic instead. Returns the letter's reason, redacted: the one to log."""
        source = self.topics[kind].get_topic_name()
        if kind in DEVICE_TO_PLATFORM and device_id is not None:
            try:
                source = mqtt_topic(device_id, kind)
            except PayloadRejected:
                pass  # a key that is no device id: keep the Kafka topic
        letter = dead_letter(source, value, reason, now, device_id)
        await self.topics["dlq"].send(key=letter.key, value=letter.value)
        return letter.reason or reason


@dataclass(frozen=True)
class WorkerAgents:
    """The agents and the timer :func:`register_agents` added to an app."""

    telemetry: Any
    status: Any
    reported: Any
    commands: Any
    dead_letters: Any
    heartbeats: Any
    acks: Any = None


def _process_as_current(event: Any) -> None:
    """Make ``event`` Faust's current event, as its stream iterator does for each event.

    A table writes a key's changelog record to the partition of the event being processed
    (``Table.partition_for_key`` reads ``faust.streams.current_event()``), but
    ``take_events`` yields a batch without setting it per event (faust-streaming#497): without
    this, a batch's table writes would fail, or go to the last event's partition."""
    _current_event.set(weakref.ref(event))


def _source(letter: bytes) -> str | None:
    """Where a dead letter came from (its ``mqtt_topic``), None if it does not say."""
    try:
        body = orjson.loads(letter)
    except orjson.JSONDecodeError:
        return None
    source = body.get("mqtt_topic") if isinstance(body, dict) else None
    return source if isinstance(source, str) else None


def _save(
    devices: DeviceCache, device_id: str, state: DeviceState, out: Outputs, *, reading: bool
) -> None:
    """Checkpoint the device; a table write that fails (Faust's metadata of a changelog not
    there just after Kafka came back, say) is logged and tried again at the device's next
    event, rather than crashing the agent and so the scoring of every device it serves."""
    try:
        devices.save(device_id, state, out, reading=reading)
    except Exception:
        _SAVE_FAILURES[0] += 1
        now = time.monotonic()
        if now - _SAVE_FAILURES[1] >= 30.0:  # at most one traceback per 30 s, with the count
            _SAVE_FAILURES[1] = now
            log.exception(
                "checkpoint of %s failed (%d failures so far); its state is kept and saved "
                "at its next event",
                device_id,
                _SAVE_FAILURES[0],
            )


#: Checkpoints that failed, and when one was last logged (monotonic s).
_SAVE_FAILURES: list[float] = [0, -1e9]


def _offset(event: Any) -> str:
    return f"{event.message.topic}[{event.message.partition}]@{event.message.offset}"


def _status(state: DeviceState, event: Any, now: datetime) -> Outputs:
    # When the platform received it (the bridge's record time, or the worker's for a missed
    # heartbeat): a redelivered will opens the same offline alert, with the same id.
    received = datetime.fromtimestamp(event.message.timestamp, UTC)
    return state.on_status(event.value, now=received)


def _lifecycle(state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_lifecycle(event.value, now=now)


def _reported(state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_reported(event.value, now=now)


def _ack(state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_ack(event.value, now=now)


def register_agents(
    app: faust.App,
    topics: Mapping[str, Any],
    devices: DeviceCache,
    *,
    group: str,
    heartbeat_check_s: float,
    batch_max: int = 500,
    batch_within_s: float = 0.01,
    desk: CommandDesk | None = None,
    fleet: Callable[[str], FleetModel | None] | None = None,
) -> WorkerAgents:
    """Add the agents (named ``{group}.{kind}``) and the heartbeat timer to ``app``.

    Telemetry is handled in micro-batches of up to ``batch_max`` events, gathered for at most
    ``batch_within_s`` seconds (the latency a reading may wait for its batch). ``desk`` is
    where the twin API's PUTs wait for the commands agent's verdicts; ``fleet`` gives a device
    type's fleet model (:mod:`twin_stream.worker.fleet`)."""
    publisher = Publisher(topics)
    desk = desk if desk is not None else CommandDesk(topics)
    refused_commands = topics["commands"].get_topic_name()

    async def handle(kind: str, events: Sequence[Any], apply: Apply) -> None:
        """Apply each event to its device's state, then produce once per device (holding the
        cache's lock: :attr:`DeviceCache.lock`)."""
        async with devices.lock:
            await _handle(kind, events, apply)

    async def _handle(kind: str, events: Sequence[Any], apply: Apply) -> None:
        now = datetime.now(UTC)
        batches: dict[str, DeviceBatch] = {}
        for event in events:
            _process_as_current(event)
            device_id = _device_id(event.key)
            if device_id is None:
                reason = "(key): a record without a device_id key [missing_key]"
                reason = await publisher.dead_letter(kind, None, event.value, reason, now)
                log.warning(
                    "dead-lettered a %s record at offset %s: %s", kind, _offset(event), reason
                )
                continue
            try:
                state = devices.load(device_id)
                out = apply(state, event, now)
            except (ValueError, PayloadRejected) as e:  # the record is invalid (pydantic's too)
                reason = e.reason if isinstance(e, PayloadRejected) else rejection_reason(e)
                # logged as the letter says it: what identifies a person redacted
                reason = await publisher.dead_letter(kind, device_id, event.value, reason, now)
                log.warning(
                    "dead-lettered a %s record of %s at offset %s: %s",
                    kind,
                    device_id,
                    _offset(event),
                    reason,
                )
                continue
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
                continue
            batch = batches.get(device_id)
            if batch is not None and batch.state is not state:  # reloaded after a failure
                await finish(kind, device_id, batches.pop(device_id))
                batch = None
            if batch is None:
                batch = batches[device_id] = DeviceBatch(state)
            batch.add(out)
            batch.last_event = event
        for device_id, batch in batches.items():
            await finish(kind, device_id, batch)

    async def finish(kind: str, device_id: str, batch: DeviceBatch) -> None:
        """Produce what a device's events made, then checkpoint it: an alert event is sent
        before the state that knows it is saved, so a worker that dies in between leaves a
        state that opens the same alert again on replay (the same id), never an alert that
        was saved but not sent."""
        await publisher.publish(device_id, batch)
        _process_as_current(batch.last_event)
        out = Outputs(twin_changed=batch.twin_changed, alerts=batch.alerts)
        _save(devices, device_id, batch.state, out, reading=kind == "telemetry")

    def telemetry(state: DeviceState, event: Any, now: datetime) -> Outputs:
        message = event.message
        if not devices.before_reading(state, message.partition, message.offset):
            return Outputs(outcome="replayed")  # its checkpoint holds it already
        # The record's timestamp is when the bridge received the reading: the clock-skew check
        # compares the device's clock with it, so a backlog read late is not mistaken for a
        # device clock that is off.
        received = datetime.fromtimestamp(message.timestamp, UTC)
        return state.on_telemetry(event.value, now=now, received_at=received, fleet=fleet)

    @app.agent(topics["telemetry"], name=f"{group}.telemetry")
    async def telemetry_agent(stream: Any) -> None:
        # Faust acks the batch's events when the loop asks for the next batch: after handle()
        # has handed every output record to the producer.
        async for events in stream.take_events(batch_max, within=batch_within_s):
            await handle("telemetry", events, telemetry)

    @app.agent(topics["status"], name=f"{group}.status")
    async def status_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("status", [event], _status)

    @app.agent(topics["reported"], name=f"{group}.reported")
    async def reported_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("reported", [event], _reported)

    @app.agent(topics["commands"], name=f"{group}.commands")
    async def commands_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("commands", [event], desk.apply)

    @app.agent(topics["ack"], name=f"{group}.acks")
    async def acks_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("ack", [event], _ack)

    @app.agent(topics["lifecycle"], name=f"{group}.lifecycle")
    async def lifecycle_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle("lifecycle", [event], _lifecycle)

    @app.agent(topics["dlq"], name=f"{group}.dlq")
    async def dead_letter_agent(stream: Any) -> None:
        async for event in stream.events():
            device_id = _device_id(event.key)
            if device_id is None:  # a dead letter of no known device: nothing to count
                continue
            if _source(event.value) == refused_commands:  # the platform's, not the device's
                continue
            async with devices.lock:
                await count_dead_letter(device_id, event)

    async def count_dead_letter(device_id: str, event: Any) -> None:
        try:
            state = devices.load(device_id)
            out = state.on_dead_letter()
        except Exception:  # the letter stays on the topic (and in the sink): not lost
            log.exception("dead letter of %s at offset %s not counted", device_id, _offset(event))
            devices.forget(device_id)
            return
        _save(devices, device_id, state, out, reading=False)
        batch = DeviceBatch(state)
        batch.add(out)
        await publisher.publish(device_id, batch)  # the invalid counter moved

    @app.timer(interval=heartbeat_check_s)
    async def heartbeats() -> None:
        async with devices.lock:
            await check_heartbeats()

    async def check_heartbeats() -> None:
        now = datetime.now(UTC)
        for device_id, state in devices.items():
            notice = state.missed_heartbeat(now=now)
            if notice is not None:
                # Through the status topic, as a will: the status agent of the device's owner
                # applies it, saves the offline alert it opens, and a redelivery of the
                # notice opens the same alert (it is stamped with the overdue moment).
                try:
                    await topics["status"].send(
                        key=device_id.encode(), value=notice.model_dump_json().encode()
                    )
                except Exception:  # Kafka away: the notice is sent again at the next check
                    state.heartbeat_sent = None
                    log.warning(
                        "missed-heartbeat notice of %s not sent; trying again in %g s",
                        device_id,
                        heartbeat_check_s,
                        exc_info=True,
                    )
            out = state.on_heartbeat(now=now)
            if out.twin_changed:  # the table is updated with the device's next event
                batch = DeviceBatch(state)
                batch.add(out)
                await publisher.publish(device_id, batch)

    return WorkerAgents(
        telemetry=telemetry_agent,
        status=status_agent,
        reported=reported_agent,
        commands=commands_agent,
        dead_letters=dead_letter_agent,
        heartbeats=heartbeats,
        acks=acks_agent,
    )
