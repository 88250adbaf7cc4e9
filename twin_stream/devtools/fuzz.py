"""Bad input for the bridge, as hypothesis strategies: malformed, oversized, wrongly typed,
NaN/infinite, future- or past-stamped and wrong-topic payloads (``twin-stream fuzz`` sends
them, :mod:`twin_stream.devtools.fuzz_run`).

Pure: a strategy is built from the fleet (device ids and types) and the platform's clock
``now``. Each probe is one MQTT message a device publishes, with the fate the platform owes it:

* **dead-lettered by the bridge** (``DEAD_LETTERED``): a message on one of the device's own
  upstream topics that breaks the wire contract. Each is a valid message with one defect (so the
  rule its dead letter must name is known where it can be: ``Probe.rules``), or garbage;
* **refused by the broker** (``REFUSED``): a message on a topic the device may not write
  (another device's, its own ``desired``, anything outside its four upstream topics). Mosquitto's
  ACL refuses it (MQTT v5: PUBACK "Not authorized") and the bridge never sees it. Such a message
  carries a *valid* payload for the topic it names, so that one let through would show on Kafka.

Timestamps are placed far out of the window (at least an hour ahead, or two days behind) so that
a run of any reasonable length does not bring them back in; valid parts are stamped within the
last hour.

>>> from datetime import datetime, timezone
>>> from twin_stream.bridge.routing import route
>>> now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> probes = draw(probe_strategy(fleet(3), now), 40, seed=1)
>>> len(probes), all(p.refused or route(p.topic, p.payload, now=now).reason for p in probes)
(40, True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from hypothesis import Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from twin_stream.bridge.routing import MAX_LETTER_PAYLOAD_BYTES
from twin_stream.domain.devices import METRICS_BY_TYPE, fleet_device
from twin_stream.domain.messages import MAX_PAYLOAD_BYTES, MAX_TS_AGE, MAX_TS_SKEW, DeviceSettings
from twin_stream.domain.topics import (
    DEVICE_ID_PATTERN,
    DEVICE_TO_PLATFORM,
    MQTT_PREFIX,
    Channel,
    mqtt_topic,
)

__all__ = [
    "CATEGORIES",
    "DEAD_LETTERED",
    "REFUSED",
    "Device",
    "Probe",
    "draw",
    "edge_probes",
    "fleet",
    "probe_strategy",
    "probes",
]

#: Categories the bridge dead-letters (the message reaches it on the device's own topic).
DEAD_LETTERED: Final = (
    "malformed",
    "oversized",
    "wrong_type",
    "missing_field",
    "extra_field",
    "out_of_range",
    "non_finite",
    "future_ts",
    "past_ts",
    "device_mismatch",
    "wrong_channel",
)
#: Categories the broker refuses (a topic the device may not write): they never reach Kafka.
REFUSED: Final = ("foreign_topic", "forbidden_topic")
CATEGORIES: Final = DEAD_LETTERED + REFUSED

#: Oversized payloads: mostly just over the bridge's limit, some far over it (to 2 MiB).
MAX_OVERSIZED_BYTES: Final = 2 * 1024 * 1024

_FW: Final = "3.2.0"
_NONFINITE = "\x00nonfinite\x00"  # stands for a raw NaN/Infinity token until serialised
_SETTINGS_SCHEMA: Final = DeviceSettings.model_json_schema()["properties"]
#: The rule a non-finite number breaks, by the kind of field it is put in.
_NON_FINITE_RULES: Final = {"float": "finite_number", "int": "int_type", "v": "literal_error"}


@dataclass(frozen=True)
class Device:
    """A device of the fleet that publishes probes (with its own login)."""

    device_id: str
    device_type: str


@dataclass(frozen=True)
class Probe:
    """One message a device publishes: its topic, bytes and the fate it is owed."""

    category: str
    device_id: str  # whose account publishes it
    topic: str
    payload: bytes
    #: The broker refuses it (a topic the device may not write); otherwise the bridge
    #: dead-letters it.
    refused: bool = False
    #: The rules its dead letter's reason may end with; empty: any rule.
    rules: frozenset[str] = frozenset()


def fleet(devices: int) -> list[Device]:
    """The first ``devices`` devices of a fleet (``pump-0001``, ``vent-0002``, ...)."""
    return [Device(*fleet_device(i)) for i in range(1, devices + 1)]


# --- valid messages, the base every defect is put into -----------------------------------------


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _recent(now: datetime) -> st.SearchStrategy[str]:
    """A timestamp within the last hour: valid for the whole of any run under 23 hours."""
    return st.integers(0, 3_600_000).map(lambda ms: _stamp(now - timedelta(milliseconds=ms)))


_SEQ = st.integers(0, 2**53 - 1)
_COMMAND_ID = st.from_regex(r"[0-9A-Za-z_-]{8,64}", fullmatch=True)


def _finite(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def _setting_bounds(name: str) -> tuple[float, float]:
    schema = _SETTINGS_SCHEMA[name]
    schema = schema.get("anyOf", [schema])[0]
    return float(schema["minimum"]), float(schema.get("maximum", 2**31 - 1))


def _telemetry(device: Device, now: datetime) -> st.SearchStrategy[dict[str, Any]]:
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
            "fw": st.just(_FW),
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
            "fw": st.just(_FW),
            "ts": _recent(now),
        },
        optional={"next_seq": _SEQ},
    )


def _reported(device: Device, now: datetime) -> st.SearchStrategy[dict[str, Any]]:
    settings_ = st.fixed_dictionaries(
        {
            "rate": _finite(*_setting_bounds("rate")),
            "sample_interval_s": _finite(*_setting_bounds("sample_interval_s")),
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


_BASES: Final[dict[str, Callable[[Device, datetime], st.SearchStrategy[dict[str, Any]]]]] = {
    "telemetry": _telemetry,
    "status": _status,
    "reported": _reported,
    "ack": _ack,
}
#: What a message of each channel must hold (``v`` has a default).
_REQUIRED: Final = {
    "telemetry": ("device_id", "device_type", "seq", "ts", "fw", "metrics"),
    "status": ("device_id", "state", "reason", "fw", "ts"),
    "reported": ("device_id", "seq", "ts", "settings"),
    "ack": ("device_id", "command_id", "status", "ts"),
}
#: Every field name of the schemas (an extra field is none of them).
_KNOWN: Final = frozenset(
    {"v", "next_seq", "command_id", "reason", "rate", "sample_interval_s", "maintenance_epoch"}
    | {name for fields in _REQUIRED.values() for name in fields}
    | {name for specs in METRICS_BY_TYPE.values() for name in specs}
)
#: Fields that may be null (so null is no defect there), besides every metric.
_NULLABLE: Final = frozenset({"next_seq", "command_id", "reason", "rate"})


def _dumps(message: Any) -> bytes:
    """JSON (integers of any size), with each ``_NONFINITE`` stand-in written as the raw token
    it stands for."""
    raw = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"):
        raw = raw.replace(json.dumps(_NONFINITE + token.decode()).encode(), token)
    return raw


def _leaves(message: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field's path (objects too: ``("metrics",)`` and ``("metrics", "motor_current")``),
    ``v`` last (hypothesis draws early elements more often, and ``v`` is in every message)."""
    paths = []
    for key, value in message.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths.extend(_leaves(value, (*prefix, key)))
    return sorted(paths, key=lambda p: p == ("v",))


def _numbers(message: dict[str, Any]) -> list[tuple[str, ...]]:
    """The numeric fields' paths; ``v`` only where there is no other (an ack)."""
    found = [p for p in _leaves(message) if type(_get(message, p)) in (int, float)]
    return [p for p in found if p != ("v",)] or [("v",)]


def _get(message: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        message = message[key]
    return message


def _replace(message: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``message`` with the field at ``path`` set to ``value``."""
    head, *rest = path
    return {**message, head: _replace(message[head], tuple(rest), value) if rest else value}


def _without(message: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != key}


# --- one defect each ---------------------------------------------------------------------------


Base = tuple[Device, Channel, dict[str, Any]]  # the device, the channel, a valid message


def _bases(devices: Sequence[Device], now: datetime) -> st.SearchStrategy[Base]:
    @st.composite
    def base(draw: st.DrawFn) -> Base:
        device = draw(st.sampled_from(devices))
        channel = draw(st.sampled_from(DEVICE_TO_PLATFORM))
        return device, channel, draw(_BASES[channel](device, now))

    return base()


def _wrong_values(value: Any, nullable: bool) -> st.SearchStrategy[Any]:
    """JSON values of another type than ``value``'s (null only where null is not allowed)."""
    others: list[Any] = [True, False, [value], {"value": value}]
    if isinstance(value, bool) or not isinstance(value, int | float | str | dict):
        raise TypeError(f"no wrong types for {value!r}")
    if isinstance(value, int):  # an int field: a string, or a float that is no integer
        others += [str(value), value + 0.5]
    elif isinstance(value, float):
        others += [str(value), repr(value)]
    elif isinstance(value, str):
        others += [0, 1, -7, 2.5]
    else:  # an object
        others = [[value], str(value), 1, True, list(value.values())]
    if not nullable:
        others.append(None)
    return st.sampled_from(others)


def _just_outside(low: float, high: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from([math.nextafter(high, math.inf), math.nextafter(low, -math.inf)]),
        st.floats(high, 1e300, exclude_min=True),
        st.floats(-1e300, low, exclude_max=True),
    )


def _float_bounds(channel: str, device: Device, path: tuple[str, ...]) -> tuple[float, float]:
    if channel == "telemetry":
        spec = METRICS_BY_TYPE[device.device_type][path[-1]]
        return spec.low, spec.high
    return _setting_bounds(path[-1])


_RANGE_RULES: Final = frozenset({"greater_than_equal", "less_than_equal"})


def _out_of_range(
    device: Device, channel: str, message: dict[str, Any], draw: st.DrawFn
) -> tuple[dict[str, Any], frozenset[str]]:
    path = draw(st.sampled_from(_numbers(message)))
    value = _get(message, path)
    if path == ("v",):
        bad: Any = draw(st.sampled_from([0, 2, -1, 10**6]))
        return _replace(message, path, bad), frozenset({"literal_error"})
    if isinstance(value, int):  # every integer field is >= 0; seq and next_seq fit 2**53
        negative = st.integers(-(2**63), -1)
        huge = st.integers(2**53, 2**70)
        bad = draw(negative | huge if path[-1] in ("seq", "next_seq") else negative)
    else:
        bad = draw(_just_outside(*_float_bounds(channel, device, path)))
    return _replace(message, path, bad), _RANGE_RULES


def _defect(devices: Sequence[Device], now: datetime, category: str) -> st.SearchStrategy[Probe]:
    """Probes of one dead-lettered category."""

    @st.composite
    def defective(draw: st.DrawFn) -> Probe:
        device, channel, message = draw(_bases(devices, now))
        rules: frozenset[str] = frozenset()
        raw: bytes | None = None
        if category == "malformed":
            raw, rules = _malformed(_dumps(message), draw)
        elif category == "oversized":
            raw = _oversized(_dumps(message), draw)
            rules = frozenset({"too_large"})
        elif category == "wrong_type":
            path = draw(st.sampled_from(_leaves(message)))
            nullable = path[-1] in _NULLABLE or (len(path) == 2 and path[0] == "metrics")
            value = draw(_wrong_values(_get(message, path), nullable))
            message = _replace(message, path, value)
        elif category == "missing_field":
            field = draw(st.sampled_from(_REQUIRED[channel]))
            message = _without(message, field)
            # A reading's schema is picked by its device_type: without it, there is none.
            rules = frozenset({"unknown_device_type" if field == "device_type" else "missing"})
        elif category == "extra_field":
            objects = [()] + [p for p in _leaves(message) if isinstance(_get(message, p), dict)]
            where = draw(st.sampled_from(objects))
            inner = _get(message, where)
            key = draw(st.text(min_size=1, max_size=40).filter(lambda k: k not in _KNOWN))
            extra: Any = draw(st.sampled_from([None, 1, "Jane Doe", [], {}]))
            grown = {**inner, key: extra}
            message = _replace(message, where, grown) if where else grown
            rules = frozenset({"extra_forbidden"})
        elif category == "out_of_range":
            message, rules = _out_of_range(device, channel, message, draw)
        elif category == "non_finite":
            path = draw(st.sampled_from(_numbers(message)))
            token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]))
            kind = "v" if path == ("v",) else type(_get(message, path)).__name__
            rules = frozenset({_NON_FINITE_RULES[kind]})
            message = _replace(message, path, _NONFINITE + token)
        elif category in ("future_ts", "past_ts"):
            message = {**message, "ts": draw(_far_stamp(now, future=category == "future_ts"))}
            rules = frozenset({"value_error"})
        elif category == "device_mismatch":
            other = draw(
                st.from_regex(DEVICE_ID_PATTERN, fullmatch=True).filter(
                    lambda d: d != device.device_id
                )
            )
            message = {**message, "device_id": other}
            rules = frozenset({"device_mismatch"})
        elif category == "wrong_channel":
            channel = draw(st.sampled_from([c for c in DEVICE_TO_PLATFORM if c != channel]))
        else:
            raise ValueError(f"no such category {category!r}")
        payload = raw if raw is not None else _dumps(message)
        topic = mqtt_topic(device.device_id, channel)
        return Probe(category, device.device_id, topic, payload, rules=rules)

    return defective()


def _malformed(valid: bytes, draw: st.DrawFn) -> tuple[bytes, frozenset[str]]:
    """Bytes that are no JSON object, or no JSON at all."""
    invalid_json = frozenset({"json_invalid"})
    kind = draw(
        st.sampled_from(
            ["truncated", "garbage", "not_utf8", "trailing", "nested", "not_object", "bom"]
        )
    )
    if kind == "truncated":  # a strict prefix of an object's text is never JSON
        return valid[: draw(st.integers(0, len(valid) - 1))], invalid_json
    if kind == "garbage":
        return draw(st.binary(max_size=512)), frozenset()
    if kind == "not_utf8":
        at = draw(st.integers(0, len(valid)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]))
        return valid[:at] + bad + valid[at:], invalid_json
    if kind == "trailing":
        return valid + draw(st.sampled_from([b"x", b"}", b",", b"{}", b"\x00"])), invalid_json
    if kind == "nested":  # past pydantic's JSON recursion limit (within the size limit)
        depth = draw(st.integers(256, 3_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        inner = opener * depth + b"1" + closer * depth
        return b'{"metrics":' + inner + b"}", invalid_json
    if kind == "bom":
        return b"\xef\xbb\xbf" + valid, invalid_json
    document = draw(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: st.lists(children, max_size=4),
            max_leaves=8,
        )
    )
    return _dumps(document), frozenset()


def _oversized(valid: bytes, draw: st.DrawFn) -> bytes:
    """A valid message padded over the bridge's limit: whitespace or an extra field."""
    size = draw(
        st.sampled_from(["edge"] * 2 + ["kib"] * 30 + ["mib"] * 4 + ["huge"] * 2).flatmap(
            lambda k: {
                "edge": st.integers(MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES + 8),
                "kib": st.integers(MAX_PAYLOAD_BYTES + 1, 64 * 1024),
                "mib": st.integers(64 * 1024, 1024 * 1024),
                "huge": st.integers(1024 * 1024, MAX_OVERSIZED_BYTES),
            }[k]
        )
    )
    return _padded(valid, size, spaces=draw(st.booleans()))


def _padded(valid: bytes, size: int, *, spaces: bool = False) -> bytes:
    """``valid`` (a JSON object) grown to ``size`` bytes: trailing spaces, or an extra field."""
    room = max(0, size - len(valid))
    if spaces:
        return valid + b" " * room
    pad = b"x" * max(0, room - len(b',"pad":""'))
    return valid[:-1] + b',"pad":"' + pad + b'"}'


#: How far out of the window stamps go: fixed spans (not up to year 1 or 9999 from ``now``),
#: so that the same seed draws the same probes whatever the clock says (hypothesis's draws
#: from a range depend on its size). The ends are within datetime's range until year 2999.
_FAR: Final = {
    True: (MAX_TS_SKEW + timedelta(hours=1), timedelta(days=7000 * 365)),
    False: (MAX_TS_AGE + timedelta(days=1), timedelta(days=2000 * 365)),
}


def _far_stamp(now: datetime, *, future: bool) -> st.SearchStrategy[str]:
    """A timestamp far outside the window (an hour past the skew allowed ahead, or a day past
    the age allowed behind, up to millennia), with a UTC offset of its own."""
    low, high = _FAR[future]
    sign = 1 if future else -1
    seconds = st.integers(int(low.total_seconds()), int(high.total_seconds()))
    offsets = st.sampled_from([0, 60, -300, 14 * 60, -12 * 60])
    return st.builds(
        lambda s, minutes: (
            (now + sign * timedelta(seconds=s))
            .astimezone(timezone(timedelta(minutes=minutes)))
            .isoformat()
        ),
        seconds,
        offsets,
    )


# --- topics a device may not write -------------------------------------------------------------

#: A device in no fleet: its topics are no fleet device's to write either.
_STRANGER: Final = Device("pump-9999", "infusion_pump")


def _refused(devices: Sequence[Device], now: datetime, category: str) -> st.SearchStrategy[Probe]:
    """Probes of one category the broker refuses."""

    @st.composite
    def refused(draw: st.DrawFn) -> Probe:
        device = draw(st.sampled_from(devices))
        if category == "foreign_topic":  # a valid message of another device, on its topic
            others = [d for d in devices if d != device] + [_STRANGER]
            victim = draw(st.sampled_from(others))
            channel = draw(st.sampled_from(DEVICE_TO_PLATFORM))
            message = draw(_BASES[channel](victim, now))
            topic = mqtt_topic(victim.device_id, channel)
            return Probe(category, device.device_id, topic, _dumps(message), refused=True)
        me = device.device_id
        topic = draw(
            st.sampled_from(
                [
                    mqtt_topic(me, "desired"),
                    f"{MQTT_PREFIX}/{me}/config",
                    f"{MQTT_PREFIX}/{me}/telemetry/extra",
                    f"{MQTT_PREFIX}/{me}",
                    f"{MQTT_PREFIX}//telemetry",
                    f"/{MQTT_PREFIX}/{me}/telemetry",
                    f"{MQTT_PREFIX}/{me.upper()}/telemetry",
                    f"twin/v2/devices/{me}/telemetry",
                    "twin/v1/fleet",
                    "$SYS/broker/fuzz",
                    f"{me}/telemetry",
                ]
            )
            # Any other topic name MQTT allows: no wildcards, no control characters, no
            # surrogates or non-characters (Mosquitto drops the connection of a client that
            # sends one: a protocol error, not a topic it may not write).
            | st.text(
                st.characters(blacklist_characters="+#", blacklist_categories=("Cc", "Cs", "Cn")),
                min_size=1,
                max_size=64,
            ).filter(lambda t: not t.startswith(("$share/", f"{MQTT_PREFIX}/{me}/")))
        )
        message = draw(_telemetry(device, now))
        return Probe(category, device.device_id, topic, _dumps(message), refused=True)

    return refused()


def probe_strategy(
    devices: Sequence[Device], now: datetime, categories: Sequence[str] = CATEGORIES
) -> st.SearchStrategy[Probe]:
    """Probes of ``categories``, each category about as often as any other."""
    return st.one_of(
        [
            _refused(devices, now, c) if c in REFUSED else _defect(devices, now, c)
            for c in categories
        ]
    )


def edge_probes(
    devices: Sequence[Device], now: datetime, categories: Sequence[str] = CATEGORIES
) -> list[Probe]:
    """The cases every run has, whatever hypothesis draws: each limit's first byte over (and
    the letter's last byte under), a payload whose whole letter would be over Kafka's default
    record size, the regressions the fuzzer found, one of each other category."""
    me, other = devices[0], ([*devices[1:], _STRANGER])[0]
    mine = {c: mqtt_topic(me.device_id, c) for c in (*DEVICE_TO_PLATFORM, "desired")}
    metric, spec = next(iter(METRICS_BY_TYPE[me.device_type].items()))
    high = spec.high
    base = {
        "v": 1,
        "device_id": me.device_id,
        "device_type": me.device_type,
        "seq": 0,
        "ts": _stamp(now),
        "fw": _FW,
        "metrics": {},
    }
    valid = _dumps(base)
    edges = [
        *(
            Probe("oversized", me.device_id, mine["telemetry"], _padded(valid, size), False, r)
            for size, r in (
                (MAX_PAYLOAD_BYTES + 1, frozenset({"too_large"})),
                (MAX_LETTER_PAYLOAD_BYTES, frozenset({"too_large"})),
                (MAX_LETTER_PAYLOAD_BYTES + 1, frozenset({"too_large"})),
                (1536 * 1024, frozenset({"too_large"})),  # base64'd whole: over 1 MB
            )
        ),
        Probe("malformed", me.device_id, mine["telemetry"], b"", rules=frozenset({"json_invalid"})),
        *(
            Probe(
                "wrong_type",
                me.device_id,
                mine["telemetry"],
                _dumps({**base, "v": v}),
                rules=frozenset({"literal_error"}),
            )
            for v in (True, 1.0)
        ),
        Probe(
            "non_finite",
            me.device_id,
            mine["telemetry"],
            _dumps({**base, "metrics": {metric: _NONFINITE + "NaN"}}),
            rules=frozenset({"finite_number"}),
        ),
        Probe(
            "future_ts",
            me.device_id,
            mine["telemetry"],
            _dumps({**base, "ts": _stamp(now + _FAR[True][0])}),
            rules=frozenset({"value_error"}),
        ),
        Probe(
            "past_ts",
            me.device_id,
            mine["telemetry"],
            _dumps({**base, "ts": _stamp(now - _FAR[False][0])}),
            rules=frozenset({"value_error"}),
        ),
        Probe(
            "device_mismatch",
            me.device_id,
            mine["telemetry"],
            _dumps({**base, "device_id": other.device_id}),
            rules=frozenset({"device_mismatch"}),
        ),
        Probe(
            "out_of_range",
            me.device_id,
            mine["telemetry"],
            _dumps({**base, "metrics": {metric: math.nextafter(high, math.inf)}}),
            rules=frozenset({"less_than_equal"}),
        ),
        Probe(
            "missing_field",
            me.device_id,
            mine["telemetry"],
            _dumps(_without(base, "seq")),
            rules=frozenset({"missing"}),
        ),
        Probe(
            "extra_field",
            me.device_id,
            mine["telemetry"],
            _dumps({**base, "patient_name": "Jane Doe"}),
            rules=frozenset({"extra_forbidden"}),
        ),
        Probe("wrong_channel", me.device_id, mine["status"], valid),
        Probe(
            "foreign_topic",
            me.device_id,
            mqtt_topic(other.device_id, "telemetry"),
            _dumps({**base, "device_id": other.device_id, "device_type": other.device_type}),
            refused=True,
        ),
        Probe("forbidden_topic", me.device_id, mine["desired"], valid, refused=True),
    ]
    return [p for p in edges if p.category in categories]


def probes(
    devices: Sequence[Device],
    now: datetime,
    count: int,
    seed: int,
    categories: Sequence[str] = CATEGORIES,
) -> list[Probe]:
    """``count`` probes of ``categories``: the :func:`edge_probes`, then hypothesis's draw.

    The draw is the same for the same seed in the same program; hypothesis (6.131 on) also
    draws constants from the modules loaded, so another set of loaded modules may draw others.
    """
    edges = edge_probes(devices, now, categories)[:count]
    return edges + draw(probe_strategy(devices, now, categories), count - len(edges), seed)


def draw(strategy: st.SearchStrategy[Any], count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy`` (hypothesis's own generation, with its bias towards
    edge cases, run outside a test), the same ones for the same seed (see :func:`probes`)."""
    drawn: list[Any] = []
    attempt = 0
    while len(drawn) < count:

        @hypothesis_seed(seed * 1_000 + attempt)
        @settings(
            max_examples=count - len(drawn),
            phases=(Phase.generate,),
            database=None,
            deadline=None,
            derandomize=False,
        )
        @given(strategy)
        def collect(example: Any) -> None:
            drawn.append(example)

        collect()
        attempt += 1
    return drawn[:count]
