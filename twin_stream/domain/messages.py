"""The wire protocol's payloads: what devices send up and what the platform sends down.

Every payload is JSON, version ``v: 1``, validated strictly: unknown fields, NaN or infinity,
out-of-range values, wrong types and timestamps too far in the future or the past are rejected
with an error that names the field and the rule (see ``docs/protocol.md``).

>>> from datetime import datetime, timezone
>>> now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> raw = (b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":7,'
...        b'"ts":"2026-11-24T11:59:59Z","fw":"2.4.1","metrics":{"motor_current":0.31}}')
>>> reading = parse_telemetry(raw, now=now)
>>> reading.seq, reading.metrics.motor_current
(7, 0.31)
>>> try:
...     parse_telemetry(raw.replace(b"0.31", b"31.0"), now=now)
... except PayloadRejected as rejected:
...     print(rejected.reason)
metrics.motor_current: Input should be less than or equal to 3 [less_than_equal]
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import PydanticCustomError

from twin_stream.domain.devices import METRIC_MODELS, DeviceType, setting_envelope
from twin_stream.domain.topics import DEVICE_ID_PATTERN
from twin_stream.errors import PayloadRejected

__all__ = [
    "AckStatus",
    "MAX_PAYLOAD_BYTES",
    "MAX_TS_AGE",
    "MAX_TS_SKEW",
    "PROTOCOL_VERSION",
    "CommandAck",
    "DesiredMessage",
    "DesiredSettings",
    "DeviceSettings",
    "ReportedState",
    "StatusMessage",
    "Telemetry",
    "decode_telemetry",
    "parse_payload",
    "parse_telemetry",
    "telemetry_model",
]

PROTOCOL_VERSION: Final = 1
#: Larger payloads are rejected before parsing (a reading is ~300 bytes).
MAX_PAYLOAD_BYTES: Final = 16 * 1024
#: A device clock may run this far ahead of the platform's before its readings are rejected.
MAX_TS_SKEW: Final = timedelta(minutes=5)
#: Readings older than this are rejected: an offline device's buffer may be hours old, not days.
MAX_TS_AGE: Final = timedelta(hours=24)

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
Seq = Annotated[int, Field(ge=0, le=2**53 - 1)]  # fits a JSON number exactly
FirmwareVersion = Annotated[
    str, Field(pattern=r"^\d{1,4}\.\d{1,4}\.\d{1,6}([-+][0-9A-Za-z.-]{1,32})?$")
]
CommandId = Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{8,64}$")]

#: A device's answer to a desired-state message: ``delivered`` (optional: received, not yet
#: applied), then ``applied``, ``rejected`` (with the reason) or ``expired``.
AckStatus = Literal["delivered", "applied", "rejected", "expired"]

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class _Payload(BaseModel):
    model_config = _STRICT

    v: Literal[1] = PROTOCOL_VERSION

    @field_validator("v", mode="before")
    @classmethod
    def _v_is_the_integer_1(cls, v: object) -> object:
        # Literal[1] alone, even strict, takes JSON's true and 1.0 (both equal 1 in Python).
        if type(v) is not int:
            raise PydanticCustomError("literal_error", "Input should be 1")
        return v


class _Timestamped(_Payload):
    ts: AwareDatetime

    @field_validator("ts")
    @classmethod
    def _ts_within_window(cls, ts: datetime, info: ValidationInfo) -> datetime:
        # The window needs the platform's clock, which the caller passes as context["now"]
        # (the domain core reads no clock itself).
        now = (info.context or {}).get("now")
        if now is not None:
            if ts > now + MAX_TS_SKEW:
                raise ValueError(f"timestamp is more than {MAX_TS_SKEW} in the future")
            if ts < now - MAX_TS_AGE:
                raise ValueError(f"timestamp is more than {MAX_TS_AGE} in the past")
        return ts


class _TelemetryBase(_Timestamped):
    device_id: DeviceId
    seq: Seq
    fw: FirmwareVersion

    if TYPE_CHECKING:  # each device type's model adds these two (see _telemetry_model)
        device_type: str
        metrics: BaseModel


def _telemetry_model(device_type: str) -> type[_TelemetryBase]:
    name = "".join(p.title() for p in device_type.split("_")) + "Telemetry"
    tag: Any = Literal[device_type]  # built at run time: one literal per device type
    return create_model(
        name,
        __base__=_TelemetryBase,
        device_type=(tag, ...),
        metrics=(METRIC_MODELS[device_type], ...),
    )


_TELEMETRY_MODELS: Final = {t: _telemetry_model(t.value) for t in DeviceType}

#: A telemetry reading of any device type; ``metrics`` has that type's schema.
Telemetry = _TelemetryBase


def telemetry_model(device_type: str) -> type[Telemetry]:
    """The telemetry schema of one device type (KeyError for an unknown type)."""
    return _TELEMETRY_MODELS[DeviceType(device_type)]


_ANY_TELEMETRY: Any = Union[tuple(_TELEMETRY_MODELS.values())]  # noqa: UP007
_TELEMETRY_ADAPTER: Final[TypeAdapter[Any]] = TypeAdapter(
    Annotated[_ANY_TELEMETRY, Field(discriminator="device_type")]
)


class StatusMessage(_Timestamped):
    """Retained on ``.../status``: the birth message, a clean shutdown, or the last will.

    ``reason="heartbeat"`` is the worker's own notice that the device went silent past its
    heartbeat timeout (:meth:`~twin_stream.domain.twin.Twin.apply_status`), sent through the
    status topic so that the offline alert it opens is handled, saved and redelivered as
    every other event is."""

    device_id: DeviceId
    state: Literal["online", "offline"]
    reason: Literal["birth", "shutdown", "will", "heartbeat"]
    fw: FirmwareVersion
    #: In a birth message: the seq of the next reading. Lower than before means the device
    #: restarted its counter, and the twin starts de-duplicating afresh.
    next_seq: Seq | None = None


class DeviceSettings(BaseModel):
    """The settings a device reports: what desired state can change."""

    model_config = _STRICT

    #: The primary operating rate (infusion flow mL/h, ventilator breaths/min, blood pump
    #: mL/min, chiller water flow L/min); null for a device that has none (patient monitor).
    rate: Annotated[float, Field(ge=0, le=1200)] | None = None
    sample_interval_s: Annotated[float, Field(ge=0.01, le=3600)] = 1.0
    #: Incremented by each completed maintenance (``maintenance_done``).
    maintenance_epoch: Annotated[int, Field(ge=0)] = 0


_RATE, _INTERVAL, _EPOCH = (
    setting_envelope(name) for name in ("rate", "sample_interval_s", "maintenance_epoch")
)


class DesiredSettings(BaseModel):
    """Desired state: the settings to change; absent fields stay as they are.

    The bounds here are the widest of any device type (the wire schema); each type's own range
    is narrower (:func:`twin_stream.domain.devices.check_settings`)."""

    model_config = _STRICT

    rate: Annotated[float, Field(ge=_RATE[0], le=_RATE[1])] | None = None
    sample_interval_s: Annotated[float, Field(ge=_INTERVAL[0], le=_INTERVAL[1])] | None = None
    maintenance_epoch: Annotated[int, Field(ge=int(_EPOCH[0]), le=int(_EPOCH[1]))] | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ReportedState(_Timestamped):
    """Sent on ``.../reported`` at start-up and after every change of settings."""

    device_id: DeviceId
    seq: Seq
    settings: DeviceSettings
    command_id: CommandId | None = None  # the command this report answers, if any


class DesiredMessage(_Payload):
    """Sent by the platform, retained, on ``.../desired``: the device's whole desired state
    (every setting the platform wants, not only the last change) at ``twin_version``, so that
    a device that was away gets every change made meanwhile from the one retained message."""

    command_id: CommandId
    twin_version: Annotated[int, Field(ge=0)]
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    desired: DesiredSettings


class CommandAck(_Timestamped):
    """Sent by a device on ``.../ack`` for every desired-state message it receives."""

    device_id: DeviceId
    command_id: CommandId
    status: AckStatus
    reason: Annotated[str, Field(max_length=200)] | None = None


def _describe(error: ValidationError) -> PayloadRejected:
    first = error.errors()[0]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        known = ", ".join(t.value for t in DeviceType)
        given = first["input"].get("device_type") if isinstance(first["input"], dict) else None
        return PayloadRejected(
            f"device_type: {given!r} is not one of {known} [unknown_device_type]",
            field="device_type",
        )
    loc = [str(p) for p in first["loc"]]
    # Drop the discriminator's tag that pydantic puts in front ('infusion_pump.metrics.x').
    if loc and loc[0] in _TELEMETRY_MODELS:
        loc = loc[1:]
    field = ".".join(loc) or "(payload)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    # The rule comes last, as in every dead letter's reason (the sink and `dlq` read it there).
    return PayloadRejected(f"{field}: {message}{more} [{first['type']}]", field=field)


def _check_size(raw: bytes) -> None:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadRejected(
            f"(payload): {len(raw)} bytes is over the limit of {MAX_PAYLOAD_BYTES} [too_large]",
            field="(payload)",
        )


def decode_telemetry(raw: bytes) -> Telemetry:
    """A reading the bridge already validated, parsed once (the schema picked by its
    ``device_type``), without the clock window, so a backlog read late is still a reading.
    An invalid one raises pydantic's ``ValidationError`` (a ``ValueError``)."""
    reading: Telemetry = _TELEMETRY_ADAPTER.validate_json(raw)
    return reading


def parse_telemetry(
    raw: bytes, *, now: datetime, expected_device_id: str | None = None
) -> Telemetry:
    """Validate one telemetry payload; raise PayloadRejected naming the field and the rule."""
    _check_size(raw)
    try:
        reading: Telemetry = _TELEMETRY_ADAPTER.validate_json(raw, context={"now": now})
    except ValidationError as e:
        raise _describe(e) from None
    _check_device(reading.device_id, expected_device_id)
    return reading


M = TypeVar("M", bound=BaseModel)


def parse_payload(
    model: type[M],
    raw: bytes,
    *,
    now: datetime | None = None,
    expected_device_id: str | None = None,
) -> M:
    """Validate a status, reported, desired or ack payload against ``model``."""
    _check_size(raw)
    try:
        payload = model.model_validate_json(raw, context={"now": now})
    except ValidationError as e:
        raise _describe(e) from None
    _check_device(getattr(payload, "device_id", None), expected_device_id)
    return payload


def _check_device(device_id: str | None, expected: str | None) -> None:
    if expected is not None and device_id is not None and device_id != expected:
        raise PayloadRejected(
            f"device_id: {device_id!r} does not match the topic's device {expected!r} "
            "[device_mismatch]",
            field="device_id",
        )
