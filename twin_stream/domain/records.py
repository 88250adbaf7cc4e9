"""What the platform records about devices and its own work, each on a topic of its own: the
twin's view (``twin.twins``), what an engineer recorded of a device (``twin.lifecycle``), a
failure as the fleet learns it (``twin.fleet``), a dead letter (``twin.dlq``) and a change a
person made through the API (``twin.audit``). The sink decodes these topics' records with them
(:mod:`twin_stream.sink.points`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from twin_stream.domain.commands import CommandRecord
from twin_stream.domain.events import EVENT_CONFIG, Alert, DeviceId
from twin_stream.domain.twin import Connectivity, DataQuality, Health

__all__ = ["AuditRecord", "DeadLetter", "FleetLesson", "LifecycleEvent", "TwinView"]


class TwinView(BaseModel):
    """A device's twin as the worker publishes it on ``twin.twins`` and serves it: the fields
    of :class:`~twin_stream.domain.twin.Twin` but its de-duplication window (``seen_mask``),
    with the device's open alerts and when the twin changed. The worker writes it as a dict
    (:func:`twin_stream.worker.processing.twin_view`); this is its schema.
    """

    model_config = EVENT_CONFIG

    device_id: str
    device_type: str | None
    version: int
    reported: dict[str, Any]
    desired: dict[str, Any]
    delta: dict[str, Any]
    metrics: dict[str, float]
    metrics_ts: AwareDatetime | None
    last_seen: AwareDatetime | None
    connectivity: Connectivity
    firmware: str | None
    health: Health
    last_command_id: str | None
    last_seq: int | None
    quality: DataQuality
    #: The recent commands by id, each with its status (absent in views made before).
    commands: dict[str, CommandRecord] = Field(default_factory=dict)
    open_alerts: list[Alert]
    changed_at: AwareDatetime


class LifecycleEvent(BaseModel):
    """Something people say happened to a device (topic ``lifecycle``, keyed by device id):

    * ``failure``: it failed at ``at`` (an engineer's record, ``twin-stream failures add``);
      its owner sends what the device's health index did up to then to the fleet
      (:class:`FleetLesson`), so the device type learns its failures' signature;
    * ``rebaseline``: its normal is to be learned afresh from now (the healthy reference too),
      as after maintenance, without a desired-state change.
    """

    model_config = EVENT_CONFIG

    event_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{8,64}$")]
    kind: Literal["failure", "rebaseline"]
    device_id: DeviceId
    at: AwareDatetime
    recorded_at: AwareDatetime
    by: Annotated[str, Field(min_length=1, max_length=128)]
    note: Annotated[str, Field(max_length=500)] | None = None


class FleetLesson(BaseModel):
    """One failure as the fleet learns it (topic ``fleet``): the device's health-index history
    (hours since its reference froze, index) and when, on that clock, it failed."""

    model_config = EVENT_CONFIG

    device_id: DeviceId
    device_type: str
    failed_at: AwareDatetime
    failed_after_h: Annotated[float, Field(ge=0)]
    history: list[tuple[float, float]]
    detector_version: str

    @property
    def key(self) -> bytes:
        """Its record key: the device type, so that one worker (the owner of the type's
        partition) learns the type's fleet model."""
        return self.device_type.encode()

    @property
    def failure_id(self) -> str:
        """One id per failure (type, device, time): a lesson read twice is learned once."""
        return f"{self.device_type}|{self.device_id}|{self.failed_at.isoformat()}"


class DeadLetter(BaseModel):
    """A message or record that was not processed, on ``twin.dlq``: where it came from, why,
    when, and its bytes. The bridge writes these for invalid MQTT messages and the worker for
    records it cannot process (:func:`twin_stream.bridge.routing.dead_letter`, both).

    Whatever identifies a person is redacted first (``redacted`` names the fields).
    ``mqtt_topic`` is the MQTT topic the bytes came on, or the Kafka topic of a record that
    never came over MQTT; ``device_id`` is None when no device is known; ``reason`` ends with
    its rule in brackets (``... [greater_than_equal]``).
    """

    model_config = EVENT_CONFIG

    mqtt_topic: str
    device_id: str | None
    reason: str
    received_at: AwareDatetime
    payload_base64: str
    #: The payload's fields whose values were replaced by keyed hashes before the letter was
    #: written (``(payload)``: none of it was kept), never their values
    #: (:mod:`twin_stream.domain.privacy`). A redacted letter cannot be replayed.
    redacted: tuple[str, ...] = ()


class AuditRecord(BaseModel):
    """One change made through the twin API, on ``twin.audit``: who made it (the API token's
    name and role), when, to which device, what it was and what it became, and the command
    that carries it to the device (if one does). The worker writes one when it accepts the
    change (:func:`twin_stream.worker.audit_views.audit`).

    >>> from datetime import datetime, timezone
    >>> r = AuditRecord(audit_id="a" * 32, at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    ...                 actor="alice", role="operator", action="set_desired",
    ...                 device_id="pump-0001", old={"rate": 100.0}, new={"rate": 80.0},
    ...                 command_id="cmd-00000001")
    >>> r.old, r.new
    ({'rate': 100.0}, {'rate': 80.0})
    """

    model_config = EVENT_CONFIG

    audit_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{8,64}$")]
    at: AwareDatetime
    actor: str  # the API token's name
    role: Literal["viewer", "operator", "admin"]
    #: What was done: ``set_desired``, ``alert_ack``, ``alert_shelve``, ...
    action: Annotated[str, Field(pattern=r"^[a-z_]{1,64}$")]
    device_id: DeviceId
    device_type: str | None = None
    old: dict[str, Any] = Field(default_factory=dict)
    new: dict[str, Any] = Field(default_factory=dict)
    command_id: str | None = None
    #: What the change is about within the device, if not the device itself (an alert's id).
    subject: str | None = None
