"""The edge probes: the cases every run has, whatever hypothesis draws (each limit's first byte
over, the regressions the fuzzer found, one of each other category)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from twin_stream.bridge.routing import MAX_LETTER_PAYLOAD_BYTES
from twin_stream.devtools.fuzz.payload import NONFINITE, dumps, padded, without
from twin_stream.devtools.fuzz.probe import CATEGORIES, STRANGER, Device, Probe
from twin_stream.devtools.fuzz.strategies import FAR
from twin_stream.devtools.fuzz.valid import FW, stamp
from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.messages import MAX_PAYLOAD_BYTES
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, mqtt_topic

__all__ = ["edge_probes"]


def edge_probes(
    devices: Sequence[Device], now: datetime, categories: Sequence[str] = CATEGORIES
) -> list[Probe]:
    """The cases every run has, whatever hypothesis draws: each limit's first byte over (and
    the letter's last byte under), a payload whose whole letter would be over Kafka's default
    record size, the regressions the fuzzer found, one of each other category."""
    me, other = devices[0], ([*devices[1:], STRANGER])[0]
    mine = {c: mqtt_topic(me.device_id, c) for c in (*DEVICE_TO_PLATFORM, "desired")}
    metric, spec = next(iter(METRICS_BY_TYPE[me.device_type].items()))
    high = spec.high
    base = {
        "v": 1,
        "device_id": me.device_id,
        "device_type": me.device_type,
        "seq": 0,
        "ts": stamp(now),
        "fw": FW,
        "metrics": {},
    }
    valid = dumps(base)
    edges = [
        *(
            Probe("oversized", me.device_id, mine["telemetry"], padded(valid, size), False, r)
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
                dumps({**base, "v": v}),
                rules=frozenset({"literal_error"}),
            )
            for v in (True, 1.0)
        ),
        Probe(
            "non_finite",
            me.device_id,
            mine["telemetry"],
            dumps({**base, "metrics": {metric: NONFINITE + "NaN"}}),
            rules=frozenset({"finite_number"}),
        ),
        Probe(
            "future_ts",
            me.device_id,
            mine["telemetry"],
            dumps({**base, "ts": stamp(now + FAR[True][0])}),
            rules=frozenset({"value_error"}),
        ),
        Probe(
            "past_ts",
            me.device_id,
            mine["telemetry"],
            dumps({**base, "ts": stamp(now - FAR[False][0])}),
            rules=frozenset({"value_error"}),
        ),
        Probe(
            "device_mismatch",
            me.device_id,
            mine["telemetry"],
            dumps({**base, "device_id": other.device_id}),
            rules=frozenset({"device_mismatch"}),
        ),
        Probe(
            "out_of_range",
            me.device_id,
            mine["telemetry"],
            dumps({**base, "metrics": {metric: math.nextafter(high, math.inf)}}),
            rules=frozenset({"less_than_equal"}),
        ),
        Probe(
            "missing_field",
            me.device_id,
            mine["telemetry"],
            dumps(without(base, "seq")),
            rules=frozenset({"missing"}),
        ),
        Probe(
            "extra_field",
            me.device_id,
            mine["telemetry"],
            dumps({**base, "patient_name": "Jane Doe"}),
            rules=frozenset({"extra_forbidden"}),
        ),
        Probe("wrong_channel", me.device_id, mine["status"], valid),
        Probe(
            "foreign_topic",
            me.device_id,
            mqtt_topic(other.device_id, "telemetry"),
            dumps({**base, "device_id": other.device_id, "device_type": other.device_type}),
            refused=True,
        ),
        Probe("forbidden_topic", me.device_id, mine["desired"], valid, refused=True),
    ]
    return [p for p in edges if p.category in categories]
