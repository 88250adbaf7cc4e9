"""One simulated device: its signal model, its faults, its settings and its side of the protocol.

The device speaks the wire protocol through the domain schemas (the same code the platform
validates with), so a simulated device cannot send what a real one could not.

>>> import random
>>> from datetime import datetime, timezone
>>> device = SimulatedDevice.create("pump-0001", "infusion_pump", seed=7)
>>> start = datetime(2026, 11, 24, tzinfo=timezone.utc)
>>> reading = device.read(t_s=0.0, dt=1.0, wall=start)
>>> reading.seq, reading.device_type, reading.fw
(0, 'infusion_pump', '3.2.0')
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime

from simulators.devices import MODELS, DeviceModel
from simulators.faults import Fault
from twin_stream.domain.devices import METRIC_MODELS as _METRIC_MODELS
from twin_stream.domain.devices import METRICS_BY_TYPE, SETTINGS_BY_TYPE, check_settings
from twin_stream.domain.messages import (
    AckStatus,
    CommandAck,
    DesiredMessage,
    DeviceSettings,
    ReportedState,
    StatusMessage,
    Telemetry,
    telemetry_model,
)

__all__ = ["FIRMWARE", "SimulatedDevice"]

FIRMWARE = {
    "infusion_pump": "3.2.0",
    "ventilator": "5.0.4",
    "patient_monitor": "2.11.1",
    "dialysis_machine": "4.1.0",
    "mri_chiller": "1.8.2",
}


_BOUNDS = {
    t: {name: (spec.low, spec.high) for name, spec in specs.items()}
    for t, specs in METRICS_BY_TYPE.items()
}


def device_rng(seed: int, device_id: str) -> random.Random:
    """A generator of its own for each device: the fleet is deterministic for a seed, and one
    device's behaviour does not change when others are added."""
    return random.Random(seed * 1_000_003 + zlib.crc32(device_id.encode()))


@dataclass
class SimulatedDevice:
    """A device of the simulated fleet."""

    device_id: str
    device_type: str
    model: DeviceModel
    rng: random.Random
    faults: list[Fault] = field(default_factory=list)
    settings: DeviceSettings = field(default_factory=DeviceSettings)
    seq: int = 0
    applied_commands: set[str] = field(default_factory=set)
    seen_commands: set[str] = field(default_factory=set)

    @classmethod
    def create(
        cls,
        device_id: str,
        device_type: str,
        *,
        seed: int,
        faults: list[Fault] | None = None,
        sample_interval_s: float = 1.0,
        start_hour: float = 0.0,
    ) -> SimulatedDevice:
        rng = device_rng(seed, device_id)
        model = MODELS[device_type](rng, start_hour=start_hour)
        settings = DeviceSettings(rate=model.rate, sample_interval_s=sample_interval_s)
        return cls(device_id, device_type, model, rng, faults or [], settings)

    @property
    def fw(self) -> str:
        return FIRMWARE[self.device_type]

    def offline(self, t_s: float) -> bool:
        return any(f.is_offline(t_s) for f in self.faults)

    def sample(self, t_s: float, dt: float) -> dict[str, float | None]:
        """The metrics at simulated time ``t_s`` (healthy physics, then every active fault)."""
        metrics = self.model.sample(t_s, dt)
        for fault in self.faults:
            fault.apply(metrics, t_s, self.device_type, self.model.nominal, self.rng)
        for name, value in metrics.items():
            if value is not None:  # sensors saturate at their physical range
                low, high = _BOUNDS[self.device_type][name]
                metrics[name] = round(min(max(value, low), high), 4)
        return metrics

    def read(self, t_s: float, dt: float, wall: datetime) -> Telemetry:
        """One telemetry reading stamped with the device clock ``wall``; advances ``seq``."""
        metrics = self.sample(t_s, dt)
        reading = telemetry_model(self.device_type).model_validate(
            {
                "device_id": self.device_id,
                "device_type": self.device_type,
                "seq": self.seq,
                "ts": wall,
                "fw": self.fw,
                "metrics": metrics,
            },
            strict=False,
        )
        self.seq += 1
        return reading

    def telemetry_payload(self, t_s: float, dt: float, wall: datetime) -> bytes:
        """The JSON of the next reading, serialised by the protocol schema.

        The hot path of a live fleet builds the reading without re-validating it (the schema's
        serializer still writes it): ``read`` validates, and the tests check that every reading a
        device produces passes the platform's validation.
        """
        model = telemetry_model(self.device_type)
        metrics = _METRIC_MODELS[self.device_type].model_construct(None, **self.sample(t_s, dt))
        reading = model.model_construct(
            v=1,
            device_id=self.device_id,
            device_type=self.device_type,
            seq=self.seq,
            ts=wall,
            fw=self.fw,
            metrics=metrics,
        )
        self.seq += 1
        return reading.model_dump_json(exclude_none=True).encode()

    # -- the rest of the protocol -----------------------------------------------------------

    def birth(self, wall: datetime) -> StatusMessage:
        return StatusMessage(
            device_id=self.device_id,
            state="online",
            reason="birth",
            fw=self.fw,
            ts=wall,
            next_seq=self.seq,
        )

    def will(self, wall: datetime) -> StatusMessage:
        return StatusMessage(
            device_id=self.device_id, state="offline", reason="will", fw=self.fw, ts=wall
        )

    def reported(self, wall: datetime, command_id: str | None = None) -> ReportedState:
        return ReportedState(
            device_id=self.device_id,
            seq=self.seq,
            ts=wall,
            settings=self.settings,
            command_id=command_id,
        )

    def receive(self, message: DesiredMessage, *, t_s: float, wall: datetime) -> list[CommandAck]:
        """Every ack a desired-state message gets: ``delivered`` first for one not seen
        before (the device has it), then what became of it (:meth:`apply_desired`)."""
        result = self.apply_desired(message, t_s=t_s, wall=wall)
        if message.command_id in self.seen_commands:
            return [result]
        self.seen_commands.add(message.command_id)
        delivered = result.model_copy(update={"status": "delivered", "reason": None})
        return [delivered, result]

    def refusal(self, message: DesiredMessage) -> str | None:
        """Why this device cannot follow a desired-state message, None if it can: a setting
        its type does not have or out of the type's range (the domain's own check), or a rate
        beyond what its make can run at."""
        desired = message.desired.as_dict()
        violations = check_settings(self.device_type, desired)
        if violations:
            return violations[0].reason[:200]
        limits = self.model.rate_limits
        rate = desired.get("rate")
        if limits is not None and rate is not None and not limits[0] <= rate <= limits[1]:
            unit = SETTINGS_BY_TYPE[self.device_type]["rate"].unit
            return (
                f"rate: {rate:g} {unit} is beyond this {self.device_type}'s make "
                f"({limits[0]:g} to {limits[1]:g} {unit}) [out_of_range]"
            )
        return None

    def apply_desired(self, message: DesiredMessage, *, t_s: float, wall: datetime) -> CommandAck:
        """Apply a desired-state message (idempotent for a command already applied): the whole
        desired state it holds, or nothing if it cannot follow it (``rejected``, with the
        reason) or it came too late (``expired``)."""

        def ack(status: AckStatus, reason: str | None = None) -> CommandAck:
            return CommandAck(
                device_id=self.device_id,
                command_id=message.command_id,
                status=status,
                reason=reason,
                ts=wall,
            )

        if message.command_id in self.applied_commands:
            return ack("applied")
        if wall >= message.expires_at:
            return ack("expired", f"expired at {message.expires_at.isoformat()}")
        desired = message.desired
        refusal = self.refusal(message)
        if refusal is not None:
            return ack("rejected", refusal)
        changes = desired.as_dict()
        epoch = changes.get("maintenance_epoch")
        if epoch is not None and epoch > self.settings.maintenance_epoch:
            self.maintenance(t_s)
        if desired.rate is not None:
            self.model.rate = desired.rate
        self.settings = self.settings.model_copy(update=changes)
        self.applied_commands.add(message.command_id)
        return ack("applied")

    def maintenance(self, t_s: float) -> None:
        """A technician fixed the device: every active degradation ends now."""
        for fault in self.faults:
            if fault.category == "degradation" and fault.active(t_s):
                fault.repaired_at_s = t_s
