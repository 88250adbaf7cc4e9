"""One device's monitor: its detector and its alert policy, fed one event at a time.

This is the one per-device path of twin-stream. The Faust worker, the demo, ``eval fleet``,
``eval nab``, ``eval skab`` and ``eval replay`` all call :meth:`DeviceMonitor.on_reading`, so a
figure measured by an evaluation is a figure of what production does.

>>> from datetime import datetime, timedelta, timezone
>>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> m = DeviceMonitor("pump-0001", "infusion_pump")
>>> outs = [m.on_reading(t0 + timedelta(seconds=i), i, {"motor_current": 0.25 + (i % 3) * 0.01})
...         for i in range(300)]
>>> max(o.score.score for o in outs) < 0.5, sum(len(o.alerts) for o in outs)
(True, 0)
>>> restored = DeviceMonitor.loads(m.dumps())
>>> a = m.on_reading(t0, 300, {"motor_current": 0.26})
>>> b = restored.on_reading(t0, 300, {"motor_current": 0.26})
>>> a.score.score == b.score.score
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.detection.detector import DeviceDetector
from twin_stream.domain.detection.health import HealthReading
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.events import Alert, PredictionRecord, ScoreRecord, SignalContribution
from twin_stream.domain.state_envelope import (
    StateSigner,
    alert_json,
    ephemeral_signer,
    pack,
    unpack,
    verified_models,
)
from twin_stream.domain.state_records import decode_record, encode_record, policy_from_record
from twin_stream.errors import StateError

__all__ = ["DeviceMonitor", "MonitorOutput", "Restored"]


@dataclass(slots=True)
class MonitorOutput:
    """What one reading produced: its score, any predictions, and alert events."""

    score: ScoreRecord
    contributions: list[SignalContribution]
    predictions: list[PredictionRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    #: the health index of this reading (against the device's frozen healthy reference)
    health: HealthReading | None = None


class DeviceMonitor:
    """The detector and the alert policy of one device."""

    def __init__(self, device_id: str, device_type: str, seed: int = 42) -> None:
        self.device_id = device_id
        self.device_type = device_type
        self.detector = DeviceDetector(device_id, device_type, seed=seed)
        self.policy = AlertPolicy(device_id, device_type)
        self.fw: str | None = None

    def on_reading(
        self,
        ts: datetime,
        seq: int,
        metrics: dict[str, float | None],
        *,
        received_at: datetime | None = None,
        fw: str | None = None,
        fleet: FleetModel | None = None,
    ) -> MonitorOutput:
        """Score one reading, then let the policy turn it into alert events.

        ``received_at`` (when the platform got the reading) lets the data-quality checks see a
        device clock that is off. A change of ``fw`` (new firmware) re-baselines the device, as
        maintenance does: the new firmware's normal is learned without paging anyone.
        ``fleet`` is the model the device type's past failures taught
        (:class:`~twin_stream.domain.detection.rul.FleetModel`): with it, the device's
        remaining useful life is predicted from its health index.
        """
        alerts: list[Alert] = []
        if fw is not None:
            if self.fw is not None and fw != self.fw:
                alerts += self.on_maintenance(ts)
            self.fw = fw
        result = self.detector.process(ts, seq, metrics, received_at=received_at, fleet=fleet)
        score, contributions = result.score, result.contributions
        policy = self.policy
        alerts += policy.on_telemetry(ts, seq)
        if not score.warming_up:
            alerts += policy.on_score(ts, seq, score.score, contributions, score.in_control)
        rul = result.rul
        for prediction in result.predictions:
            if prediction is not rul:  # the health index's own: on_health reads it
                alerts += policy.on_prediction(prediction, seq)
        health = result.health
        if health.index is not None:
            alerts += policy.on_health(
                ts,
                seq,
                stage=health.stage,
                index=health.index,
                trend_per_h=health.trend_per_h,
                drivers=health.drivers,
                rul=rul,
            )
        alerts += policy.on_quality(ts, seq, result.quality)
        return MonitorOutput(score, contributions, result.predictions, alerts, health)

    def on_connectivity(self, ts: datetime, online: bool) -> list[Alert]:
        """The device went offline (a will, a missed heartbeat) or came back."""
        return self.policy.on_connectivity(ts, online)

    def on_maintenance(self, ts: datetime) -> list[Alert]:
        """``maintenance_done``, a firmware change or an explicit re-baseline: the device's
        normal (its healthy reference too) is learned afresh."""
        self.detector.rebaseline()
        return self.policy.on_maintenance(ts)

    def open_alerts(self) -> list[Alert]:
        return self.policy.open_alerts()

    def dumps(self, signer: StateSigner | None = None) -> bytes:
        """The monitor's saved state (:mod:`~twin_stream.domain.state_envelope`): the alert
        policy as a validated JSON record, the detector's state signed with ``signer`` (by
        default a key of this process only: :func:`~.state_envelope.ephemeral_signer`)."""
        return pack(
            self.device_id,
            self.device_type,
            self.fw,
            encode_record(self.policy),
            self.detector.dumps(),
            signer or ephemeral_signer(),
        )

    @classmethod
    def restore(cls, data: bytes, signer: StateSigner | None = None) -> Restored:
        """Restore what can be trusted of a monitor saved by :meth:`dumps`: the alert policy
        from its record if it validates, the detector if its signature (checked before
        anything is unpickled) and its versions match. What is refused starts afresh and is
        said in :class:`Restored`: a detector or River upgrade re-learns the models
        and keeps every alert, acknowledgement and shelf.

        Raises :class:`~twin_stream.errors.StateVersionMismatch` for bytes of another format
        (a pickle of before issue 23), :class:`~twin_stream.errors.StateError` for an
        envelope that does not read: then nothing is kept.
        """
        saved = unpack(data)
        header = saved.header
        restored = Restored(cls.__new__(cls))
        monitor = restored.monitor
        monitor.device_id, monitor.device_type, monitor.fw = (
            header.device_id,
            header.device_type,
            header.fw,
        )
        try:
            policy = policy_from_record(decode_record(alert_json(saved)))
            if (policy.device_id, policy.device_type) != (header.device_id, header.device_type):
                raise StateError(
                    f"alert state: of {policy.device_id} ({policy.device_type}), in the "
                    f"envelope of {header.device_id} ({header.device_type})"
                )
        except StateError as e:
            restored.alerts_refused = e
            policy = AlertPolicy(header.device_id, header.device_type)
        monitor.policy = policy
        try:
            models = verified_models(saved, signer or ephemeral_signer())  # before unpickling
            detector = DeviceDetector.loads(models)
            if detector.device_id != header.device_id:
                raise StateError(f"detector state: of {detector.device_id}, not {header.device_id}")
        except StateError as e:
            restored.models_refused = e
            detector = DeviceDetector(header.device_id, header.device_type)
        monitor.detector = detector
        return restored

    @classmethod
    def loads(cls, data: bytes, signer: StateSigner | None = None) -> DeviceMonitor:
        """Restore a monitor saved by :meth:`dumps`, all of it or nothing: the first thing
        :meth:`restore` refused is raised (every one a :class:`~twin_stream.errors.StateError`:
        :class:`~twin_stream.errors.StateSignatureInvalid`,
        :class:`~twin_stream.errors.StateVersionMismatch`)."""
        restored = cls.restore(data, signer)
        if restored.refused:
            raise restored.refused[0]
        return restored.monitor


@dataclass(slots=True)
class Restored:
    """A monitor as far as its saved state could be trusted, and what was refused of it."""

    monitor: DeviceMonitor
    #: Why the alert state was refused (the policy starts afresh), if it was.
    alerts_refused: StateError | None = None
    #: Why the models were refused (they are learned afresh), if they were.
    models_refused: StateError | None = None

    @property
    def refused(self) -> list[StateError]:
        """Everything refused, the alert state's first."""
        return [e for e in (self.alerts_refused, self.models_refused) if e is not None]
