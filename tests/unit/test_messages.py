"""Wire payload schemas: every valid payload round-trips, every invalid one is named and refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.messages import (
    MAX_PAYLOAD_BYTES,
    CommandAck,
    DesiredMessage,
    ReportedState,
    StatusMessage,
    parse_payload,
    parse_telemetry,
)
from twin_stream.errors import PayloadRejected

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

device_types = st.sampled_from(sorted(METRICS_BY_TYPE))
device_ids = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{1,20}\Z")


@st.composite
def valid_telemetry(draw: st.DrawFn) -> dict[str, Any]:
    device_type = draw(device_types)
    specs = METRICS_BY_TYPE[device_type]
    metrics = {
        name: draw(st.none() | st.floats(spec.low, spec.high, allow_nan=False))
        for name, spec in specs.items()
        if draw(st.booleans())
    }
    offset = draw(st.integers(-86_000_000, 290_000))  # ms: within the accepted window
    return {
        "v": 1,
        "device_id": draw(device_ids),
        "device_type": device_type,
        "seq": draw(st.integers(0, 2**53 - 1)),
        "ts": (NOW + timedelta(milliseconds=offset)).isoformat().replace("+00:00", "Z"),
        "fw": draw(st.from_regex(r"\A\d{1,3}\.\d{1,3}\.\d{1,4}\Z")),
        "metrics": metrics,
    }


@settings(max_examples=300)
@given(valid_telemetry())
def test_every_valid_reading_round_trips(payload: dict[str, Any]) -> None:
    reading = parse_telemetry(json.dumps(payload).encode(), now=NOW)
    assert reading.seq == payload["seq"]
    again = parse_telemetry(reading.model_dump_json().encode(), now=NOW)
    assert again == reading
    for name, value in payload["metrics"].items():
        assert getattr(reading.metrics, name) == value  # type: ignore[attr-defined]


def _mutations(payload: dict[str, Any], spec_name: str, high: float) -> list[tuple[str, Any]]:
    return [
        ("patient_name", {**payload, "patient_name": "Jane Doe"}),  # unknown field (and PII)
        ("metrics", {**payload, "metrics": {**payload["metrics"], "bogus_metric": 1.0}}),
        (f"metrics.{spec_name}", {**payload, "metrics": {spec_name: high * 2 + 10}}),
        (f"metrics.{spec_name}", {**payload, "metrics": {spec_name: "12.5"}}),
        (f"metrics.{spec_name}", {**payload, "metrics": {spec_name: True}}),
        ("seq", {**payload, "seq": -1}),
        ("seq", {**payload, "seq": "7"}),
        ("seq", {**payload, "seq": 2**60}),
        ("device_id", {**payload, "device_id": "Bad Id/#"}),
        ("fw", {**payload, "fw": "latest"}),
        ("v", {**payload, "v": 2}),
        ("ts", {**payload, "ts": (NOW + timedelta(hours=1)).isoformat()}),
        ("ts", {**payload, "ts": (NOW - timedelta(days=3)).isoformat()}),
        ("ts", {**payload, "ts": "2026-11-24T11:59:00"}),  # no time zone
        ("device_type", {**payload, "device_type": "toaster"}),
    ]


@settings(max_examples=100)
@given(valid_telemetry(), st.data())
def test_every_invalid_reading_is_rejected_naming_the_field(
    payload: dict[str, Any], data: st.DataObject
) -> None:
    spec = data.draw(st.sampled_from(list(METRICS_BY_TYPE[payload["device_type"]].values())))
    field, bad = data.draw(st.sampled_from(_mutations(payload, spec.name, spec.high)))
    with pytest.raises(PayloadRejected) as rejected:
        parse_telemetry(json.dumps(bad).encode(), now=NOW)
    reason = rejected.value.reason
    assert reason.startswith(field.split(".")[0]) or reason.startswith(field), reason
    assert "[" in reason and reason.endswith("]") or "more)" in reason, reason


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_rejected(literal: bytes) -> None:
    raw = (
        b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":1,'
        b'"ts":"2026-11-24T12:00:00Z","fw":"1.0.0","metrics":{"battery":' + literal + b"}}"
    )
    with pytest.raises(PayloadRejected, match=r"metrics\.battery: .*finite"):
        parse_telemetry(raw, now=NOW)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"v":1', b"\xff\xfe"])
def test_malformed_bytes_are_rejected(raw: bytes) -> None:
    with pytest.raises(PayloadRejected):
        parse_telemetry(raw, now=NOW)


def test_oversized_payload_is_rejected_before_parsing() -> None:
    raw = b'{"pad":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    with pytest.raises(PayloadRejected, match="too_large"):
        parse_telemetry(raw, now=NOW)


def test_device_id_must_match_the_topic() -> None:
    raw = (
        b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":1,'
        b'"ts":"2026-11-24T12:00:00Z","fw":"1.0.0","metrics":{}}'
    )
    with pytest.raises(PayloadRejected, match="device_mismatch"):
        parse_telemetry(raw, now=NOW, expected_device_id="pump-0002")


def test_other_payloads_validate_and_round_trip() -> None:
    status = StatusMessage(
        device_id="pump-0001", state="online", reason="birth", fw="1.0.0", ts=NOW, next_seq=5
    )
    assert parse_payload(StatusMessage, status.model_dump_json().encode(), now=NOW) == status
    reported = ReportedState.model_validate(
        {"device_id": "pump-0001", "seq": 3, "ts": NOW, "settings": {"rate": 50.0}}
    )
    assert parse_payload(ReportedState, reported.model_dump_json().encode()) == reported
    desired = DesiredMessage.model_validate(
        {
            "command_id": "cmd-12345678",
            "twin_version": 3,
            "issued_at": NOW,
            "expires_at": NOW + timedelta(hours=1),
            "desired": {"rate": 60.0},
        }
    )
    assert parse_payload(DesiredMessage, desired.model_dump_json().encode()) == desired
    with pytest.raises(PayloadRejected, match=r"desired\.rate"):
        parse_payload(DesiredMessage, desired.model_dump_json().replace("60.0", "-1").encode())
    with pytest.raises(PayloadRejected, match="status"):
        parse_payload(
            CommandAck,
            b'{"v":1,"device_id":"pump-0001","command_id":"cmd-12345678",'
            b'"status":"maybe","ts":"2026-11-24T12:00:00Z"}',
        )
