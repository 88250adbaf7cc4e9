"""The fuzzer's probes against the bridge's own rules (no broker, no Kafka), and the regressions
the fuzzer found in those rules."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings

from simulators.device import SimulatedDevice
from twin_stream.bridge.routing import MAX_LETTER_PAYLOAD_BYTES, dead_letter, route
from twin_stream.devtools.fuzz import (
    CATEGORIES,
    Probe,
    draw,
    edge_probes,
    fleet,
    probe_strategy,
    probes,
)
from twin_stream.domain.messages import MAX_PAYLOAD_BYTES
from twin_stream.domain.privacy import MAX_UNPARSED_BYTES
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, mqtt_topic

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DEVICES = fleet(4)
RULE = re.compile(r"\[([a-z_]+)\]$")  # as the sink reads a reason's rule


@settings(max_examples=600, derandomize=True, deadline=None)
@given(probe_strategy(DEVICES, NOW))
def test_each_probe_breaks_the_rule_it_is_made_to_break(probe: Probe) -> None:
    own = {mqtt_topic(probe.device_id, c) for c in DEVICE_TO_PLATFORM}
    if probe.refused:  # a topic the device may not write (the broker's ACL: its own four)
        assert probe.topic not in own
        return
    assert probe.topic in own
    routed = route(probe.topic, probe.payload, now=NOW)
    assert routed.reason is not None, f"{probe.category} accepted: {probe.payload[:300]!r}"
    rule = RULE.search(routed.reason)
    assert rule is not None, routed.reason
    assert not probe.rules or rule.group(1) in probe.rules, (probe.category, routed.reason)


def test_the_edge_probes_meet_their_fate_by_the_bridges_own_rules() -> None:
    edges = edge_probes(DEVICES, NOW)
    assert {p.category for p in edges} == set(CATEGORIES)
    for probe in edges:
        if probe.refused:  # a topic the device may not write: the broker refuses it
            assert probe.topic not in {mqtt_topic(probe.device_id, c) for c in DEVICE_TO_PLATFORM}
            continue
        routed = route(probe.topic, probe.payload, now=NOW)
        assert routed.reason is not None, probe
        rule = RULE.search(routed.reason)
        assert rule is not None and (not probe.rules or rule.group(1) in probe.rules), probe
    sizes = sorted(len(p.payload) for p in edges if p.category == "oversized")
    assert sizes[:3] == [
        MAX_PAYLOAD_BYTES + 1,
        MAX_LETTER_PAYLOAD_BYTES,
        MAX_LETTER_PAYLOAD_BYTES + 1,
    ]
    assert len(base64.b64encode(b"x" * sizes[3])) > 1_000_000  # whole, over Kafka's default


def test_probes_are_the_edges_then_the_draw() -> None:
    made = probes(DEVICES, NOW, 50, seed=3)
    assert len(made) == 50 and made[: len(edge_probes(DEVICES, NOW))] == edge_probes(DEVICES, NOW)
    only = probes(DEVICES, NOW, 30, seed=3, categories=("oversized",))
    assert {p.category for p in only} == {"oversized"} and len(only) == 30


def test_a_draw_is_the_same_for_the_same_seed_whatever_the_clock() -> None:
    first = draw(probe_strategy(DEVICES, NOW), 150, seed=3)
    assert first == draw(probe_strategy(DEVICES, NOW), 150, seed=3)
    assert first != draw(probe_strategy(DEVICES, NOW), 150, seed=4)
    later = draw(probe_strategy(DEVICES, NOW + timedelta(days=3, seconds=7)), 150, seed=3)
    assert [(p.category, p.topic) for p in later] == [(p.category, p.topic) for p in first]


def _reading() -> dict[str, object]:
    device = SimulatedDevice.create("pump-0001", "infusion_pump", seed=1)
    return orjson.loads(device.telemetry_payload(0.0, 1.0, NOW))  # type: ignore[no-any-return]


TELEMETRY = mqtt_topic("pump-0001", "telemetry")


def test_a_valid_reading_is_forwarded() -> None:  # the baseline of the regressions below
    assert route(TELEMETRY, orjson.dumps(_reading()), now=NOW).reason is None


def test_the_reason_ends_with_its_rule_when_several_fields_are_wrong() -> None:
    """Regression: with more than one error the reason ended "[rule] (and N more)", so the sink
    tagged the letter's rule "unknown" and ``dlq list --reason RULE`` missed it."""
    bad = {**_reading(), "seq": "7", "fw": 3, "ts": 5}
    reason = route(TELEMETRY, orjson.dumps(bad), now=NOW).reason
    assert reason is not None and "(and 2 more)" in reason
    assert RULE.search(reason), reason


def test_a_version_that_is_true_or_a_float_is_refused() -> None:
    """Regression: ``Literal[1]``, even strict, took JSON's ``true`` and ``1.0`` as version 1."""
    for v in (True, 1.0):
        reason = route(TELEMETRY, orjson.dumps({**_reading(), "v": v}), now=NOW).reason
        assert reason == "v: Input should be 1 [literal_error]", v


def test_a_huge_payloads_letter_keeps_its_head_and_fits_in_a_kafka_record() -> None:
    """Regression: a 2 MiB payload made a 2.8 MB letter, which Kafka refuses for good (1 MB by
    default) and the uplink, acking in order, sent again and again, holding up every message
    behind it: one device's oversized message stopped the whole bridge."""
    payload = orjson.dumps(_reading())[:-1] + b',"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    letter = route(TELEMETRY, payload, now=NOW)
    body = orjson.loads(letter.value)
    assert len(letter.value) < 100_000
    assert base64.b64decode(body["payload_base64"]) == payload[:MAX_LETTER_PAYLOAD_BYTES]
    assert body["reason"] == (
        f"(payload): {len(payload)} bytes is over the limit of {MAX_PAYLOAD_BYTES} "
        f"(the letter keeps its first {MAX_LETTER_PAYLOAD_BYTES} of {len(payload)} bytes) "
        "[too_large]"
    )
    # Up to the cut, a letter keeps every byte of a JSON payload...
    whole = b'"' + b"x" * (MAX_LETTER_PAYLOAD_BYTES - 2) + b'"'
    kept = orjson.loads(dead_letter(TELEMETRY, whole, "why [rule]", NOW).value)
    assert base64.b64decode(kept["payload_base64"]) == whole and kept["reason"] == "why [rule]"
    # ... and of one that is no JSON, only its head (issue 23: it cannot be redacted by field).
    unparsed = orjson.loads(dead_letter(TELEMETRY, b"x" * 5000, "why [rule]", NOW).value)
    assert base64.b64decode(unparsed["payload_base64"]) == b"x" * MAX_UNPARSED_BYTES
    assert unparsed["reason"] == (
        f"why (no JSON: the letter keeps its first {MAX_UNPARSED_BYTES} of 5000 bytes) [rule]"
    )
