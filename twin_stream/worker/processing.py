"""What a worker does with one device's events, without Faust or Kafka: plain, testable glue.

A :class:`DeviceState` bundles the device's twin and its monitor (detector and alert policy,
:class:`~twin_stream.domain.monitor.DeviceMonitor`, the same code every evaluation runs). Each
``on_*`` method takes one event and returns what must be produced (scores, predictions, alert
events, the twin if it changed). The Faust agents only load the state, call these and produce.

>>> from datetime import datetime, timezone
>>> state = DeviceState.new("pump-0001")
>>> raw = (b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":1,'
...        b'"ts":"2026-11-24T12:00:00Z","fw":"1.0.0","metrics":{"motor_current":0.3}}')
>>> out = state.on_telemetry(raw, now=datetime(2026, 11, 24, 12, 0, 1, tzinfo=timezone.utc))
>>> out.outcome, len(out.scores), out.twin_changed
('accepted', 1, True)
>>> state.on_telemetry(raw, now=datetime(2026, 11, 24, 12, 0, 2, tzinfo=timezone.utc)).outcome
'duplicate'
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.events import (
    COMMAND_TTL,
    Alert,
    Command,
    PredictionRecord,
    ScoreRecord,
)
from twin_stream.domain.messages import (
    CommandAck,
    DesiredSettings,
    ReportedState,
    StatusMessage,
    decode_telemetry,
)
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.domain.records import FleetLesson, LifecycleEvent
from twin_stream.domain.twin import Twin
from twin_stream.errors import (
    CommandRefused,
    PayloadRejected,
    StateError,
)
from twin_stream.state_signing import signer as state_signer
from twin_stream.worker.replay import ReplayPoint
from twin_stream.worker.state_restore import StateRefusal, restore_monitor

__all__ = ["DeviceState", "Outputs", "twin_view"]

log = logging.getLogger(__name__)


@dataclass
class Outputs:
    """What one event makes the worker produce."""

    outcome: str = "accepted"
    scores: list[ScoreRecord] = field(default_factory=list)
    predictions: list[PredictionRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    twin_changed: bool = False
    #: The device's whole desired document, when it changed (for ``twin.desired``).
    documents: list[Command] = field(default_factory=list)
    #: What the fleet learns of a failure of the device (for ``twin.fleet``).
    lessons: list[FleetLesson] = field(default_factory=list)


def twin_view(twin: Twin, open_alerts: list[Alert], changed_at: datetime) -> dict[str, object]:
    """The JSON a twin is published and served as; its schema is
    :class:`~twin_stream.domain.records.TwinView` (what the sink decodes it with)."""
    view = twin.model_dump(mode="json", exclude={"seen_mask"})
    view["open_alerts"] = [a.model_dump(mode="json") for a in open_alerts]
    view["changed_at"] = changed_at.isoformat()
    return view


@dataclass
class DeviceState:
    """One device's twin and its monitor (detector and alert policy)."""

    twin: Twin
    monitor: DeviceMonitor | None = None
    events_since_checkpoint: int = 0
    #: Restored from a checkpoint: readings after it may have been handled by the previous
    #: owner, so a jump in seq on the first reading is not counted as a gap.
    resumed: bool = False
    #: The telemetry record (partition, offset) handled last: where a checkpoint taken now
    #: says to replay from (the next one), :mod:`twin_stream.worker.replay`.
    reading_at: tuple[int, int] | None = None
    #: The device's replay point in the table (None: it has none yet), and the one to write
    #: with its next reading when it has none (its first reading here).
    replay_point: ReplayPoint | None = None
    anchor: ReplayPoint | None = None
    #: The missed-heartbeat notice sent for this device (its overdue moment), so that the
    #: timer sends it once.
    heartbeat_sent: datetime | None = None
    #: What of the saved state was refused (a signature that failed, a record that did not
    #: validate) and is not yet dead-lettered (:meth:`take_refusals`).
    refusals: list[StateRefusal] = field(default_factory=list)

    @classmethod
    def new(cls, device_id: str) -> DeviceState:
        return cls(Twin(device_id=device_id))

    @classmethod
    def restore(cls, device_id: str, twin: bytes | None, models: bytes | None) -> DeviceState:
        """A device's state from its last checkpoint in the tables (or a new one).

        What of the models does not restore (:meth:`restore_models`: another detector or
        policy version, a signature that fails, damaged bytes) starts afresh; a twin that does
        not restore is a :class:`StateError` (the twin holds settings and desired state that
        must not be reset silently)."""
        if not twin:
            state = cls.new(device_id)
        else:
            try:
                state = cls(Twin.model_validate_json(twin), resumed=True)
            except ValidationError as e:
                first = e.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "(twin)"
                raise StateError(
                    f"the saved twin of {device_id} does not restore: {where}: {first['msg']}"
                ) from e
        state.restore_models(models)
        return state

    # -- persistence: the twin and the models at checkpoints ---------------------------------

    def models_bytes(self) -> bytes:
        """The monitor's saved state, its models signed with the process's state key."""
        assert self.monitor is not None
        return self.monitor.dumps(state_signer())

    def restore_models(self, data: bytes | None) -> None:
        """The monitor from its checkpoint, as far as it can be trusted
        (:meth:`DeviceMonitor.restore`): alert state that validates is kept even when the
        models are refused, and refused models are learned afresh. Another detector, River or
        policy version (an upgrade) is logged; anything else refused (a signature that fails,
        a record that does not validate) is logged and kept in :attr:`refusals`, for the
        agent to send to the dead-letter topic."""
        if data:
            self.monitor = restore_monitor(self.twin.device_id, data, self.refusals)

    def take_refusals(self) -> list[StateRefusal]:
        """The refusals not yet sent to the dead-letter topic (and forget them)."""
        refusals, self.refusals = self.refusals, []
        return refusals

    # -- events -----------------------------------------------------------------------------

    def on_telemetry(
        self,
        raw: bytes,
        *,
        now: datetime,
        received_at: datetime | None = None,
        fleet: Callable[[str], FleetModel | None] | None = None,
    ) -> Outputs:
        """One reading: the twin first (duplicates and stale readings stop there), then the
        monitor. ``received_at`` is when the platform received it (the clock-skew check);
        ``fleet`` gives a device type's fleet model (its remaining-useful-life predictions)."""
        reading = decode_telemetry(raw)
        if self.resumed:
            self.twin.resume_before(reading.seq)
            self.resumed = False
        outcome = self.twin.apply_reading(reading, now=now)
        out = Outputs(outcome=outcome, twin_changed=True)
        if outcome in ("duplicate", "stale"):
            return out  # redelivered or too old: harmless, counted in the twin's quality
        if self.monitor is None:
            self.monitor = DeviceMonitor(self.twin.device_id, reading.device_type)
        result = self.monitor.on_reading(
            reading.ts,
            reading.seq,
            reading.metrics.model_dump(),
            received_at=received_at,
            fw=reading.fw,
            fleet=fleet(reading.device_type) if fleet is not None else None,
        )
        out.scores.append(result.score)
        out.predictions.extend(result.predictions)
        out.alerts += result.alerts
        self._update_health()
        self.events_since_checkpoint += 1
        return out

    def on_lifecycle(self, raw: bytes, *, now: datetime) -> Outputs:
        """A failure an engineer recorded (the device's health-index history up to it goes to
        the fleet) or a re-baseline (the device's normal, its healthy reference too, is
        learned afresh from now, and its device-fault alerts end as after maintenance).

        A record of another device, or a failure of a device whose health index has no frozen
        reference yet (nothing to learn from), is invalid (PayloadRejected: a dead letter)."""
        event = LifecycleEvent.model_validate_json(raw)
        device_id = self.twin.device_id
        if event.device_id != device_id:
            raise PayloadRejected(
                f"device_id: {event.device_id!r} does not match the record's device "
                f"{device_id!r} [device_mismatch]",
                field="device_id",
            )
        monitor = self.monitor
        out = Outputs(twin_changed=False)
        if event.kind == "rebaseline":
            if monitor is not None:
                out.alerts += monitor.on_maintenance(event.at)
            return out
        health = monitor.detector.health if monitor is not None else None
        failed_after_h = health.hours_at(event.at) if health is not None else None
        if monitor is None or health is None or failed_after_h is None:
            raise PayloadRejected(
                f"kind: no healthy reference of {device_id} was learned before {event.at} "
                "[no_reference]",
                field="kind",
            )
        out.lessons.append(
            FleetLesson(
                device_id=device_id,
                device_type=monitor.device_type,
                failed_at=event.at,
                failed_after_h=failed_after_h,
                history=[(t, i) for t, i in health.history() if t <= failed_after_h],
                detector_version=monitor.detector.version,
            )
        )
        return out

    def on_status(self, raw: bytes, *, now: datetime) -> Outputs:
        """A birth, shutdown or will, or the worker's missed-heartbeat notice. ``now`` is when
        the platform received it (its record's time: the same when it is redelivered)."""
        status = StatusMessage.model_validate_json(raw)
        changed = self.twin.apply_status(status, now=now)
        out = Outputs(twin_changed=True)
        if changed and self.monitor is not None:
            # A missed heartbeat dates from when the device became overdue: the offline
            # alert it opens is the same alert, with the same id, whenever it is handled.
            at = status.ts if status.reason == "heartbeat" else now
            out.alerts += self.monitor.on_connectivity(at, status.state == "online")
        return out

    def missed_heartbeat(self, *, now: datetime) -> StatusMessage | None:
        """The notice to send (once) when the device is online but silent past its heartbeat
        timeout: an offline status stamped with the moment it became overdue, which the
        status agent applies (:meth:`on_status`) unless the device spoke in between."""
        overdue = self.twin.overdue_at()
        if overdue is None or now <= overdue or self.heartbeat_sent == overdue:
            return None
        self.heartbeat_sent = overdue
        return StatusMessage(
            device_id=self.twin.device_id,
            state="offline",
            reason="heartbeat",
            fw=self.twin.firmware or "0.0.0",
            ts=overdue,
        )

    def on_reported(self, raw: bytes, *, now: datetime) -> Outputs:
        report = ReportedState.model_validate_json(raw)
        return Outputs(twin_changed=self.twin.apply_reported(report, now=now))

    def on_heartbeat(self, *, now: datetime) -> Outputs:
        """The timer: commands past their time expire, and their changes leave desired state
        (a new document without them). (A silent device is the status agent's:
        :meth:`missed_heartbeat`.)"""
        return self._expire_commands(now)

    def on_dead_letter(self) -> Outputs:
        self.twin.count_invalid()
        return Outputs(twin_changed=True)

    def on_command(self, raw: bytes, *, now: datetime) -> Outputs:
        """A desired-state change (from the twin API or an operator) reaches the twin.

        It is checked here, where the device's events are applied one at a time: against the
        twin version it was made against (``if_match``) and the device type's ranges; a
        refused one raises :class:`~twin_stream.errors.CommandRefused` (for the dead-letter
        topic). An accepted one is merged into desired state and the device's new desired
        document is produced. A command seen before (redelivered) changes nothing and
        produces the current document again."""
        command = Command.model_validate_json(raw)
        twin = self.twin
        if command.command_id in twin.commands:
            return Outputs(documents=[self.desired_document(now)])
        if command.kind == "withdraw":
            raise PayloadRejected(
                "kind: 'withdraw' is the worker's own, not a request [not_a_request]", field="kind"
            )
        if command.expires_at <= now:  # it waited too long on the way: the device never gets it
            raise CommandRefused(
                f"expires_at: the command expired at {command.expires_at.isoformat()}, before "
                "it reached the twin [expired]",
                status=422,
                field="expires_at",
            )
        changes = command.desired.as_dict()
        twin.check_change(changes, if_match=command.if_match)
        out = self._expire_commands(now)  # so that the new document carries none of them
        twin.request_change(
            command.command_id,
            command.kind,
            changes,
            expires_at=command.expires_at,
            issued_at=command.issued_at,
            now=now,
        )
        out.twin_changed = True
        out.documents = [self.desired_document(now)]
        if command.kind == "maintenance_done" and self.monitor is not None:
            # The device was serviced: its normal is learned afresh, and nobody is paged for
            # the new normal (a repaired pump may draw a little more current than before).
            out.alerts += self.monitor.on_maintenance(now)
        return out

    def on_ack(self, raw: bytes, *, now: datetime) -> Outputs:
        """The device's answer to a desired-state document: the statuses of the commands it
        carries; a rejected or expired change leaves desired state (a new document). An ack
        of a command the twin does not know is invalid (PayloadRejected, for the dead-letter
        topic)."""
        ack = CommandAck.model_validate_json(raw)
        if ack.device_id != self.twin.device_id:
            raise PayloadRejected(
                f"device_id: {ack.device_id!r} does not match the record's device "
                f"{self.twin.device_id!r} [device_mismatch]",
                field="device_id",
            )
        self.twin.last_seen = now
        outcome = self.twin.apply_ack(
            ack.command_id, ack.status, ack.reason, now=now, sent_at=ack.ts
        )
        if outcome is None:
            raise PayloadRejected(
                f"command_id: {ack.command_id!r} is no command of {self.twin.device_id} the "
                "twin remembers [unknown_command]",
                field="command_id",
            )
        out = Outputs(twin_changed=bool(outcome.changed))
        if outcome.finished:
            self._withdraw(outcome.finished, now, out)
        return out

    def desired_document(self, now: datetime) -> Command:
        """The device's whole desired state as the command the bridge delivers: the newest
        command's id and kind, the twin version of its document, and the earliest expiry of
        the changes it carries that are not applied yet."""
        latest = self.twin.latest_command()
        if latest is None:
            raise StateError(f"{self.twin.device_id} has no command to send")
        command_id, record = latest
        return Command(
            command_id=command_id,
            device_id=self.twin.device_id,
            kind=record.kind,  # type: ignore[arg-type]  # one of ours: CommandKind
            desired=DesiredSettings.model_validate(self.twin.desired),
            issued_at=now,
            expires_at=self.twin.document_expiry(now=now, default=now + COMMAND_TTL),
            twin_version=record.version,
        )

    def _expire_commands(self, now: datetime) -> Outputs:
        out = Outputs(twin_changed=False)
        expired = self.twin.expire_commands(now=now)
        if expired:
            out.twin_changed = True
            self._withdraw(expired, now, out)
        return out

    def _withdraw(self, command_ids: list[str], now: datetime, out: Outputs) -> None:
        if self.twin.withdraw(command_ids, command_id=uuid.uuid4().hex, now=now) is not None:
            out.twin_changed = True
            out.documents = [self.desired_document(now)]

    def open_alerts(self) -> list[Alert]:
        return self.monitor.open_alerts() if self.monitor is not None else []

    def _update_health(self) -> None:
        severities = {a.severity for a in self.open_alerts()}
        self.twin.health = (
            "failing"
            if "critical" in severities
            else "degraded"
            if "warning" in severities
            else "ok"
        )
