"""The worker's agents, one per Kafka topic it reads, as values: :data:`AGENTS`, a table of
:class:`AgentSpec` (the topic, the agent's name, what an event does to its device's state),
each run by the one loop :meth:`DeviceAgents.run`.

* ``telemetry``: de-duplicate by seq, update the twin, score, predict, alert; produce
  ``scores``, ``predictions``, ``alerts`` and the twin's new view on ``twins``. It works in
  micro-batches (``stream.take_events``): per device and batch it sends one scores record (a
  JSON array, :mod:`twin_stream.domain.batches`), the latest prediction of each signal and the
  twin's view once, and every alert event (:mod:`twin_stream.worker.publishing`). Faust
  acknowledges a batch's offsets only after the batch was handled and its records handed to
  the producer (at-least-once);
* ``status`` / ``reported``: connectivity and reported settings;
* ``commands``: desired state set through the twin API or by an operator, checked against the
  twin (If-Match, the type's ranges: :mod:`twin_stream.worker.commands`) and merged into the
  device's whole desired document, produced on ``desired`` for the bridge;
* ``acks``: the devices' answers to those documents: each command's status, and a new
  document without the changes a device rejected;
* ``lifecycle``: failures and re-baselines set through the twin API;
* ``dlq``: count invalid payloads in the device's data-quality counters.

The heartbeat timer (silent devices, commands past their time) is
:mod:`twin_stream.worker.heartbeat`'s.

A record an agent cannot process is not dropped: it goes to the dead-letter topic with the
reason, in the bridge's dead-letter format (:func:`twin_stream.bridge.routing.dead_letter`), and
the device's ``invalid`` counter goes up (the dead-letter agent reads it back). That holds for a
record that is invalid (its field and rule: :func:`~twin_stream.bridge.routing.rejection_reason`),
one without a device key, and one whose processing failed for any other reason (a bug, a saved
twin that does not restore: :func:`~twin_stream.worker.publishing.failure_reason`, logged with
its traceback); the agent goes on with the next. A checkpoint that fails is logged and tried
again at the device's next event (:meth:`DeviceCache.try_save`).

>>> [f"twin-worker.{spec.name}" for spec in AGENTS]  # doctest: +NORMALIZE_WHITESPACE
['twin-worker.telemetry', 'twin-worker.status', 'twin-worker.reported',
 'twin-worker.commands', 'twin-worker.acks', 'twin-worker.lifecycle', 'twin-worker.dlq']
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.streams import _current_event

from twin_stream.bridge.routing import dead_letter, rejection_reason
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.errors import PayloadRejected
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.commands import CommandDesk
from twin_stream.worker.heartbeat import register_heartbeats
from twin_stream.worker.processing import DeviceState, Outputs
from twin_stream.worker.publishing import DeviceBatch, Publisher, failure_reason

__all__ = ["AGENTS", "AgentSpec", "DeviceAgents", "register_agents"]

log = logging.getLogger(__name__)

#: What an agent does with one event: update the state, say what to produce (ValueError or
#: PayloadRejected if the record is invalid).
Apply = Callable[["DeviceAgents", DeviceState, Any, datetime], Outputs]

#: What an agent does with a batch of events (one, but for telemetry), holding the cache's lock.
Handle = Callable[["DeviceAgents", "AgentSpec", Sequence[Any]], Awaitable[None]]


def _device_id(key: bytes | None) -> str | None:
    """The device a record is keyed by; None for a record without a usable key."""
    if not key:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None


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


def _changelog_name(table: Any) -> str:
    """The changelog topic of a Faust table (``models``: a plain mapping's, in tests)."""
    changelog = getattr(table, "changelog_topic", None)
    return str(changelog.get_topic_name()) if changelog is not None else "models"


def _offset(event: Any) -> str:
    return f"{event.message.topic}[{event.message.partition}]@{event.message.offset}"


class DeviceAgents:
    """What every agent shares (the device cache and its lock, the publisher, the command
    desk, the fleet models), and the one loop they all run (:meth:`run`)."""

    def __init__(
        self,
        topics: Mapping[str, Any],
        devices: DeviceCache,
        *,
        desk: CommandDesk,
        fleet: Callable[[str], FleetModel | None] | None,
        batch_max: int,
        batch_within_s: float,
    ) -> None:
        self.devices = devices
        self.publisher = Publisher(topics)
        self.desk = desk
        self.fleet = fleet
        self.batch_max = batch_max
        self.batch_within_s = batch_within_s
        #: The commands topic: a dead letter from it is the platform's, not the device's.
        self.refused_commands = topics["commands"].get_topic_name()
        #: The models' changelog: a dead letter from it (saved state refused when it was
        #: loaded: a signature that failed) is the platform's too.
        self.refused_state = _changelog_name(devices.models)

    async def run(self, spec: AgentSpec, stream: Any) -> None:
        """The loop of every agent: take its events, one by one or (``spec.batched``) in
        micro-batches, and handle them holding the cache's lock (:attr:`DeviceCache.lock`)."""
        if spec.batched:
            # Faust acks the batch's events when the loop asks for the next batch: after the
            # handler has handed every output record to the producer.
            async for events in stream.take_events(self.batch_max, within=self.batch_within_s):
                async with self.devices.lock:
                    await spec.handle(self, spec, events)
        else:
            async for event in stream.events():
                async with self.devices.lock:
                    await spec.handle(self, spec, [event])

    async def apply_events(self, spec: AgentSpec, events: Sequence[Any]) -> None:
        """Apply each event to its device's state (``spec.apply``), then produce once per
        device; a record that cannot be processed is dead-lettered, and the next goes on."""
        kind = spec.topic
        publisher = self.publisher
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
                state = self.devices.load(device_id)
                out = spec.apply(self, state, event, now)
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
                self.devices.forget(device_id)  # it may have stopped half-way through the state
                await publisher.dead_letter(kind, device_id, event.value, reason, now)
                continue
            await self.dead_letter_refusals(device_id, state, now)
            batch = batches.get(device_id)
            if batch is not None and batch.state is not state:  # reloaded after a failure
                await self._finish(kind, device_id, batches.pop(device_id))
                batch = None
            if batch is None:
                batch = batches[device_id] = DeviceBatch(state)
            batch.add(out)
            batch.last_event = event
        for device_id, batch in batches.items():
            await self._finish(kind, device_id, batch)

    async def _finish(self, kind: str, device_id: str, batch: DeviceBatch) -> None:
        """Produce what a device's events made, then checkpoint it: an alert event is sent
        before the state that knows it is saved, so a worker that dies in between leaves a
        state that opens the same alert again on replay (the same id), never an alert that
        was saved but not sent."""
        await self.publisher.publish(device_id, batch)
        _process_as_current(batch.last_event)
        out = Outputs(twin_changed=batch.twin_changed, alerts=batch.alerts)
        self.devices.try_save(device_id, batch.state, out, reading=kind == "telemetry")

    async def dead_letter_refusals(self, device_id: str, state: DeviceState, now: datetime) -> None:
        """Send what of the device's saved state was refused when it was loaded (a signature
        that failed, a record that did not validate: :meth:`DeviceState.restore_models`) to
        the dead-letter topic: the envelope's header and the reason, never its pickle."""
        for refusal in state.take_refusals():
            letter = dead_letter(self.refused_state, refusal.header, refusal.reason, now, device_id)
            await self.publisher.topics["dlq"].send(key=letter.key, value=letter.value)

    async def count_dead_letters(self, spec: AgentSpec, events: Sequence[Any]) -> None:
        """Count each dead letter of a device in its data-quality counters (``spec.apply``),
        save it and produce the twin's view. A letter of no known device, or of a refused
        command (the platform's, not the device's), counts nowhere."""
        now = datetime.now(UTC)
        for event in events:
            device_id = _device_id(event.key)
            if device_id is None or _source(event.value) in (
                self.refused_commands,
                self.refused_state,
            ):
                continue
            try:
                state = self.devices.load(device_id)
                out = spec.apply(self, state, event, now)
            except Exception:  # the letter stays on the topic (and in the sink): not lost
                log.exception(
                    "dead letter of %s at offset %s not counted", device_id, _offset(event)
                )
                self.devices.forget(device_id)
                continue
            self.devices.try_save(device_id, state, out, reading=False)
            await self.publisher.publish_outputs(device_id, state, out)  # the invalid counter


def _telemetry(agents: DeviceAgents, state: DeviceState, event: Any, now: datetime) -> Outputs:
    message = event.message
    if not agents.devices.before_reading(state, message.partition, message.offset):
        return Outputs(outcome="replayed")  # its checkpoint holds it already
    # The record's timestamp is when the bridge received the reading: the clock-skew check
    # compares the device's clock with it, so a backlog read late is not mistaken for a device
    # clock that is off.
    received = datetime.fromtimestamp(message.timestamp, UTC)
    return state.on_telemetry(event.value, now=now, received_at=received, fleet=agents.fleet)


def _status(_: DeviceAgents, state: DeviceState, event: Any, now: datetime) -> Outputs:
    # When the platform received it (the bridge's record time, or the worker's for a missed
    # heartbeat): a redelivered will opens the same offline alert, with the same id.
    received = datetime.fromtimestamp(event.message.timestamp, UTC)
    return state.on_status(event.value, now=received)


def _reported(_: DeviceAgents, state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_reported(event.value, now=now)


def _command(agents: DeviceAgents, state: DeviceState, event: Any, now: datetime) -> Outputs:
    return agents.desk.apply(state, event, now)


def _ack(_: DeviceAgents, state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_ack(event.value, now=now)


def _lifecycle(_: DeviceAgents, state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_lifecycle(event.value, now=now)


def _dead_letter(_: DeviceAgents, state: DeviceState, event: Any, now: datetime) -> Outputs:
    return state.on_dead_letter()


@dataclass(frozen=True)
class AgentSpec:
    """One agent, as a value: the topic it reads (its kind), its name after the group's
    (``{group}.{name}``: Faust's consumer group and the agent's identity, never to change),
    what one event does to its device's state, and its help line (``faust agents``)."""

    topic: str
    name: str
    apply: Apply
    help: str
    #: Micro-batches of up to ``batch_max`` events (``stream.take_events``), not one by one.
    batched: bool = False
    handle: Handle = DeviceAgents.apply_events


#: The worker's agents, in the order they are added to the app.
AGENTS: tuple[AgentSpec, ...] = (
    AgentSpec("telemetry", "telemetry", _telemetry, "readings: score, predict, alert", True),
    AgentSpec("status", "status", _status, "connectivity: wills, births, missed heartbeats"),
    AgentSpec("reported", "reported", _reported, "the settings a device reports"),
    AgentSpec("commands", "commands", _command, "desired state, merged into its document"),
    AgentSpec("ack", "acks", _ack, "the devices' answers to their desired documents"),
    AgentSpec("lifecycle", "lifecycle", _lifecycle, "failures and re-baselines"),
    AgentSpec(
        "dlq", "dlq", _dead_letter, "dead letters, counted", handle=DeviceAgents.count_dead_letters
    ),
)


def _agent_function(agents: DeviceAgents, spec: AgentSpec) -> Callable[[Any], Awaitable[None]]:
    """The function Faust runs for ``spec``: the one loop, bound to it, named after it (in
    Faust's logs and ``faust agents``)."""
    run = functools.partial(agents.run, spec)
    run.__module__ = __name__
    run.__name__ = run.__qualname__ = f"{spec.name}_agent"  # type: ignore[attr-defined]
    run.__doc__ = spec.help
    return run


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
) -> DeviceAgents:
    """Add the agents of :data:`AGENTS` (named ``{group}.{name}``) and the heartbeat timer
    (:mod:`twin_stream.worker.heartbeat`) to ``app``.

    Telemetry is handled in micro-batches of up to ``batch_max`` events, gathered for at most
    ``batch_within_s`` seconds (the latency a reading may wait for its batch). ``desk`` is
    where the twin API's PUTs wait for the commands agent's verdicts; ``fleet`` gives a device
    type's fleet model (:mod:`twin_stream.worker.fleet`)."""
    agents = DeviceAgents(
        topics,
        devices,
        desk=desk if desk is not None else CommandDesk(topics),
        fleet=fleet,
        batch_max=batch_max,
        batch_within_s=batch_within_s,
    )
    for spec in AGENTS:
        app.agent(topics[spec.topic], name=f"{group}.{spec.name}")(_agent_function(agents, spec))
    register_heartbeats(
        app, topics["status"], devices, agents.publisher, interval_s=heartbeat_check_s
    )
    return agents
