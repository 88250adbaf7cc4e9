"""Valid messages of each upstream channel, as hypothesis strategies: the base every defect is
put into, and what a refused probe carries. Valid timestamps are within the last hour."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from hypothesis import strategies as st

from twin_stream.devtools.fuzz.probe import Device
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.messages import DeviceSettings
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, Channel

__all__ = [
    "BASES",
    "FW",
    "KNOWN",
    "NULLABLE",
    "REQUIRED",
    "Base",
    "bases",
    "setting_bounds",
    "stamp",
    "telemetry",
]

FW: Final = "3.2.0"
_SETTINGS_SCHEMA: Final = DeviceSettings.model_json_schema()["properties"]


def stamp(at: datetime) -> str:
    """``at`` as a message's ``ts`` (ISO 8601, ``Z`` for UTC)."""
    return at.isoformat().replace("+00:00", "Z")


def _recent(now: datetime) -> st.SearchStrategy[str]:
    """A timestamp within the last hour: valid for the whole of any run under 23 hours."""
    return st.integers(0, 3_600_000).map(lambda ms: stamp(now - timedelta(milliseconds=ms)))


_SEQ = st.integers(0, 2**53 - 1)
_COMMAND_ID = st.from_regex(r"[0-9A-Za-z_-]{8,64}", fullmatch=True)


def _finite(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def setting_bounds(name: str) -> tuple[float, float]:
    """The range the settings schema allows ``name`` (an int's upper end, if it has none)."""
    schema = _SETTINGS_SCHEMA[name]
    schema = schema.get("anyOf", [schema])[0]
    return float(schema["minimum"]), float(schema.get("maximum", 2**31 - 1))


def telemetry(device: Device, now: datetime) -> st.SearchStrategy[dict[str, Any]]:
    """A valid reading of ``device``, with any of its type's metrics."""
    specs = METRICS_BY_TYPE[device.device_type]
    metrics = st.fixed_dictionaries(
        {}, optional={name: _finite(s.low, s.high) for name, s in specs.items()}
    )
    return st.fixed_dictionaries(
        {
            "v": st.just(1),
            "device_id": st.just(device.device_id),
            "device_type": st.just(device.device_type),
            "seq": _SEQ,
            "ts": _recent(now),
            "fw": st.just(FW),
            "metrics": metrics,
        }
    )


def _status(device: Device, now: datetime) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "v": st.just(1),
            "device_id": st.just(device.device_id),
            "state": st.sampled_from(["online", "offline"]),
            "reason": st.sampled_from(["birth", "shutdown", "will"]),
            "fw": st.just(FW),
            "ts": _recent(now),
        },
        optional={"next_seq": _SEQ},
    )


def _reported(device: Device, now: datetime) -> st.SearchStrategy[dict[str, Any]]:
    settings_ = st.fixed_dictionaries(
        {
            "rate": _finite(*setting_bounds("rate")),
            "sample_interval_s": _finite(*setting_bounds("sample_interval_s")),
            "maintenance_epoch": st.integers(0, 2**31 - 1),
        }
    )
    return st.fixed_dictionaries(
        {
            "v": st.just(1),
            "device_id": st.just(device.device_id),
            "seq": _SEQ,
            "ts": _recent(now),
            "settings": settings_,
        },
        optional={"command_id": _COMMAND_ID},
    )


def _ack(device: Device, now: datetime) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "v": st.just(1),
            "device_id": st.just(device.device_id),
            "command_id": _COMMAND_ID,
            "status": st.sampled_from(["delivered", "applied", "rejected", "expired"]),
            "ts": _recent(now),
        },
        optional={"reason": st.text(max_size=200)},
    )


#: A valid message of each channel, for a device at a time.
BASES: Final[dict[str, Callable[[Device, datetime], st.SearchStrategy[dict[str, Any]]]]] = {
    "telemetry": telemetry,
    "status": _status,
    "reported": _reported,
    "ack": _ack,
}
#: What a message of each channel must hold (``v`` has a default).
REQUIRED: Final = {
    "telemetry": ("device_id", "device_type", "seq", "ts", "fw", "metrics"),
    "status": ("device_id", "state", "reason", "fw", "ts"),
    "reported": ("device_id", "seq", "ts", "settings"),
    "ack": ("device_id", "command_id", "status", "ts"),
}
#: Every field name of the schemas (an extra field is none of them).
KNOWN: Final = frozenset(
    {"v", "next_seq", "command_id", "reason", "rate", "sample_interval_s", "maintenance_epoch"}
    | {name for fields in REQUIRED.values() for name in fields}
    | {name for specs in METRICS_BY_TYPE.values() for name in specs}
)
#: Fields that may be null (so null is no defect there), besides every metric.
NULLABLE: Final = frozenset({"next_seq", "command_id", "reason", "rate"})


Base = tuple[Device, Channel, dict[str, Any]]  # the device, the channel, a valid message


def bases(devices: Sequence[Device], now: datetime) -> st.SearchStrategy[Base]:
    """A device of ``devices``, one of its upstream channels and a valid message of it."""

    @st.composite
    def base(draw: st.DrawFn) -> Base:
        device = draw(st.sampled_from(devices))
        channel = draw(st.sampled_from(DEVICE_TO_PLATFORM))
        return device, channel, draw(BASES[channel](device, now))

    return base()
