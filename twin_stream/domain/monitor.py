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

import pickle
import zlib
from dataclasses import dataclass, field
from datetime import datetime

from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.detection.detector import UNREADABLE_STATE, DeviceDetector
from twin_stream.domain.detection.health import HealthReading
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.events import Alert, PredictionRecord, ScoreRecord, SignalContribution
from twin_stream.errors import StateVersionMismatch, map_exceptions

__all__ = ["DeviceMonitor", "MonitorOutput"]


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

    def dumps(self) -> bytes:
        """The detector's versioned state and the policy, compressed."""
        state = (self.detector.dumps(), self.policy, self.fw)
        return zlib.compress(pickle.dumps(state, protocol=5), 6)

    @classmethod
    def loads(cls, data: bytes) -> DeviceMonitor:
        """Restore a monitor saved by :meth:`dumps`.

        Raises :class:`~twin_stream.errors.StateVersionMismatch` for state of another detector
        or policy version, :class:`~twin_stream.errors.StateError` for bytes that do not
        restore (both are ``StateError``).
        """
        with map_exceptions(UNREADABLE_STATE, "monitor state"):
            detector_state, policy, fw = pickle.loads(zlib.decompress(data))  # noqa: S301 - ours
            monitor = cls.__new__(cls)
            monitor.detector = DeviceDetector.loads(detector_state)
            if getattr(policy, "version", None) != AlertPolicy.version:
                raise StateVersionMismatch(
                    f"alert policy state is {getattr(policy, 'version', None)}, "
                    f"this is {AlertPolicy.version}"
                )
            monitor.policy = policy
            monitor.device_id = monitor.detector.device_id
            monitor.device_type = monitor.detector.device_type
            monitor.fw = fw
        return monitor
