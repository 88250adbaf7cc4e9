"""The payload strategies: bad input for the bridge, one category at a time (malformed,
oversized, wrongly typed, NaN/infinite, future- or past-stamped, wrong-topic ...), as hypothesis
strategies built from the fleet and the platform's clock ``now``.

Timestamps are placed far out of the window (at least an hour ahead, or two days behind) so that
a run of any reasonable length does not bring them back in; valid parts are stamped within the
last hour (:mod:`~twin_stream.devtools.fuzz.valid`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from hypothesis import strategies as st

from twin_stream.devtools.fuzz.payload import (
    NONFINITE,
    dumps,
    get,
    leaves,
    numbers,
    padded,
    replace,
    without,
)
from twin_stream.devtools.fuzz.probe import CATEGORIES, REFUSED, STRANGER, Device, Probe
from twin_stream.devtools.fuzz.valid import (
    BASES,
    KNOWN,
    NULLABLE,
    REQUIRED,
    bases,
    setting_bounds,
    telemetry,
)
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.messages import MAX_PAYLOAD_BYTES, MAX_TS_AGE, MAX_TS_SKEW
from twin_stream.domain.topics import (
    DEVICE_ID_PATTERN,
    DEVICE_TO_PLATFORM,
    MQTT_PREFIX,
    mqtt_topic,
)

__all__ = ["FAR", "MAX_OVERSIZED_BYTES", "probe_strategy"]

#: Oversized payloads: mostly just over the bridge's limit, some far over it (to 2 MiB).
MAX_OVERSIZED_BYTES: Final = 2 * 1024 * 1024

#: The rule a non-finite number breaks, by the kind of field it is put in.
_NON_FINITE_RULES: Final = {"float": "finite_number", "int": "int_type", "v": "literal_error"}


# --- one defect each ---------------------------------------------------------------------------


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
    return setting_bounds(path[-1])


_RANGE_RULES: Final = frozenset({"greater_than_equal", "less_than_equal"})


def _out_of_range(
    device: Device, channel: str, message: dict[str, Any], draw: st.DrawFn
) -> tuple[dict[str, Any], frozenset[str]]:
    path = draw(st.sampled_from(numbers(message)))
    value = get(message, path)
    if path == ("v",):
        bad: Any = draw(st.sampled_from([0, 2, -1, 10**6]))
        return replace(message, path, bad), frozenset({"literal_error"})
    if isinstance(value, int):  # every integer field is >= 0; seq and next_seq fit 2**53
        negative = st.integers(-(2**63), -1)
        huge = st.integers(2**53, 2**70)
        bad = draw(negative | huge if path[-1] in ("seq", "next_seq") else negative)
    else:
        bad = draw(_just_outside(*_float_bounds(channel, device, path)))
    return replace(message, path, bad), _RANGE_RULES


def _defect(devices: Sequence[Device], now: datetime, category: str) -> st.SearchStrategy[Probe]:
    """Probes of one dead-lettered category."""

    @st.composite
    def defective(draw: st.DrawFn) -> Probe:
        device, channel, message = draw(bases(devices, now))
        rules: frozenset[str] = frozenset()
        raw: bytes | None = None
        if category == "malformed":
            raw, rules = _malformed(dumps(message), draw)
        elif category == "oversized":
            raw = _oversized(dumps(message), draw)
            rules = frozenset({"too_large"})
        elif category == "wrong_type":
            path = draw(st.sampled_from(leaves(message)))
            nullable = path[-1] in NULLABLE or (len(path) == 2 and path[0] == "metrics")
            value = draw(_wrong_values(get(message, path), nullable))
            message = replace(message, path, value)
        elif category == "missing_field":
            field = draw(st.sampled_from(REQUIRED[channel]))
            message = without(message, field)
            # A reading's schema is picked by its device_type: without it, there is none.
            rules = frozenset({"unknown_device_type" if field == "device_type" else "missing"})
        elif category == "extra_field":
            objects = [()] + [p for p in leaves(message) if isinstance(get(message, p), dict)]
            where = draw(st.sampled_from(objects))
            inner = get(message, where)
            key = draw(st.text(min_size=1, max_size=40).filter(lambda k: k not in KNOWN))
            extra: Any = draw(st.sampled_from([None, 1, "Jane Doe", [], {}]))
            grown = {**inner, key: extra}
            message = replace(message, where, grown) if where else grown
            rules = frozenset({"extra_forbidden"})
        elif category == "out_of_range":
            message, rules = _out_of_range(device, channel, message, draw)
        elif category == "non_finite":
            path = draw(st.sampled_from(numbers(message)))
            token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]))
            kind = "v" if path == ("v",) else type(get(message, path)).__name__
            rules = frozenset({_NON_FINITE_RULES[kind]})
            message = replace(message, path, NONFINITE + token)
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
        payload = raw if raw is not None else dumps(message)
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
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        # at most as deep as fits the limit (3,000 objects are 18 KB: too_large, not this)
        fits = (MAX_PAYLOAD_BYTES - 16) // (len(opener) + len(closer))
        depth = draw(st.integers(256, min(3_000, fits)))
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
    return dumps(document), frozenset()


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
    return padded(valid, size, spaces=draw(st.booleans()))


#: How far out of the window stamps go: fixed spans (not up to year 1 or 9999 from ``now``),
#: so that the same seed draws the same probes whatever the clock says (hypothesis's draws
#: from a range depend on its size). The ends are within datetime's range until year 2999.
FAR: Final = {
    True: (MAX_TS_SKEW + timedelta(hours=1), timedelta(days=7000 * 365)),
    False: (MAX_TS_AGE + timedelta(days=1), timedelta(days=2000 * 365)),
}


def _far_stamp(now: datetime, *, future: bool) -> st.SearchStrategy[str]:
    """A timestamp far outside the window (an hour past the skew allowed ahead, or a day past
    the age allowed behind, up to millennia), with a UTC offset of its own."""
    low, high = FAR[future]
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


def _refused(devices: Sequence[Device], now: datetime, category: str) -> st.SearchStrategy[Probe]:
    """Probes of one category the broker refuses."""

    @st.composite
    def refused(draw: st.DrawFn) -> Probe:
        device = draw(st.sampled_from(devices))
        if category == "foreign_topic":  # a valid message of another device, on its topic
            others = [d for d in devices if d != device] + [STRANGER]
            victim = draw(st.sampled_from(others))
            channel = draw(st.sampled_from(DEVICE_TO_PLATFORM))
            message = draw(BASES[channel](victim, now))
            topic = mqtt_topic(victim.device_id, channel)
            return Probe(category, device.device_id, topic, dumps(message), refused=True)
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
        message = draw(telemetry(device, now))
        return Probe(category, device.device_id, topic, dumps(message), refused=True)

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
