"""Records -> points: the measurements dashboards and alert rules query.

``SAME_POINTS`` (the cases of ``data/points.json``) pins the line protocol of a representative
record of every kind, as the producers write them (the bridge's telemetry, the worker's scores,
predictions, alerts and twins, the bridge's and the worker's dead letters, the twin API's audit
records): decoding records into their models must not change one tag, field or timestamp of
what the sink writes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from twin_stream.domain.twin import Twin
from twin_stream.errors import PayloadRejected
from twin_stream.sink.points import MEASUREMENTS, to_points
from twin_stream.worker.processing import twin_view

#: One case per representative record: its kind, the record as its producer writes it, and the
#: line protocol of every point the sink writes for it.
POINTS_FILE = Path(__file__).parent / "data" / "points.json"

SAME_POINTS = [
    pytest.param(case["kind"], case["record"], case["lines"], id=case["id"])
    for case in json.loads(POINTS_FILE.read_text())
]


def _lines(kind: str, body: object) -> list[str]:
    return [p.to_line_protocol() for p in to_points(kind, orjson.dumps(body))]


@pytest.mark.parametrize(("kind", "body", "lines"), SAME_POINTS)
def test_each_kind_writes_the_points_it_always_wrote(
    kind: str, body: dict[str, Any], lines: list[str]
) -> None:
    assert _lines(kind, body) == lines


def test_every_kind_is_pinned() -> None:
    assert {p.values[0] for p in SAME_POINTS} == set(MEASUREMENTS)


def test_a_batch_of_scores_is_one_point_per_score_as_if_sent_one_by_one() -> None:
    # The worker sends one device's scores of a micro-batch as one record, a JSON array.
    pinned = [p.values for p in SAME_POINTS if p.values[0] == "scores"]
    assert _lines("scores", [body for _, body, _ in pinned]) == [
        line for _, _, lines in pinned for line in lines
    ]
    assert to_points("scores", b" []") == []


def test_a_dead_letter_is_a_point_with_its_rule_and_device() -> None:
    letter = {
        "mqtt_topic": "twin/v1/devices/pump-0001/telemetry",
        "device_id": "pump-0001",
        "reason": "seq: Input should be greater than or equal to 0 [greater_than_equal]",
        "received_at": "2026-11-24T12:00:00.123456+00:00",
        "payload_base64": "e30=",
    }
    (point,) = to_points("dlq", orjson.dumps(letter))
    line = point.to_line_protocol()
    assert line.startswith("dead_letter,device_id=pump-0001,rule=greater_than_equal count=1i,")
    assert line.endswith(" 1795521600123456")  # microseconds: two letters never collide


def test_a_dead_letter_of_an_unknown_device_is_kept_too() -> None:
    letter = {
        "mqtt_topic": "elsewhere",
        "device_id": None,
        "reason": "(topic): not a device topic",
        "received_at": "2026-11-24T12:00:00+00:00",
        "payload_base64": "",
    }
    (point,) = to_points("dlq", orjson.dumps(letter))
    assert "device_id=unknown,rule=unknown" in point.to_line_protocol()


def test_twin_points_carry_reported_and_desired_numbers_side_by_side() -> None:
    twin = Twin(
        device_id="pump-0001",
        device_type="infusion_pump",
        version=4,
        connectivity="online",
        health="ok",
        reported={"rate": 100.0, "sample_interval_s": 1.0, "maintenance_epoch": 0, "mode": "x"},
        desired={"rate": 120.0},
        delta={"rate": 120.0},
    )
    twin.quality.invalid = 2
    view = twin_view(twin, [], datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    line = to_points("twins", orjson.dumps(view))[0].to_line_protocol()
    for field in ("reported_rate=100", "desired_rate=120", "delta_size=1i", "quality_invalid=2i"):
        assert field in line
    assert "mode" not in line  # strings stay in the twin API


def test_a_record_that_is_not_a_measurement_is_refused_with_its_kind() -> None:
    with pytest.raises(PayloadRejected, match="dlq"):
        to_points("dlq", b'{"device_id": "x"}')


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (
            "telemetry",
            b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":-1,'
            b'"ts":"2026-11-24T11:59:59Z","fw":"2.4.1","metrics":{}}',
            "infusion_pump.seq: Input should be greater than or equal to 0 (greater_than_equal)",
        ),
        ("scores", b"{", "Invalid JSON: EOF while parsing an object"),
        ("alerts", b"[]", "Input should be an object (model_type)"),
        ("telemetry", b"{}", "Unable to extract tag using discriminator 'device_type'"),
        ("twins", b'{"device_id": "pump-0001"}', "device_type: Field required (missing)"),
    ],
)
def test_a_record_that_does_not_decode_is_unwritable_naming_its_field_and_rule(
    kind: str, value: bytes, reason: str
) -> None:
    with pytest.raises(PayloadRejected) as rejected:
        to_points(kind, value)
    prefix = f"(record): no points from a {kind} record: {reason}"
    assert rejected.value.reason.startswith(prefix), rejected.value.reason
    assert rejected.value.reason.endswith(" [unwritable]")
    assert rejected.value.field == "(record)"


def test_a_twins_commands_are_command_status_points_at_the_time_of_their_status() -> None:
    twin = Twin.model_validate(
        {
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "version": 7,
            "commands": {
                "cmd-00000001": {
                    "kind": "set_desired",
                    "status": "rejected",
                    "version": 5,
                    "changes": {"rate": 800.0},
                    "previous": {"rate": None},
                    "issued_at": "2026-11-24T11:59:00Z",
                    "expires_at": "2026-11-25T11:59:00Z",
                    "at": "2026-11-24T12:00:00.250Z",
                    "reason": "rate: 800 mL/h is beyond this make [out_of_range]",
                },
                "cmd-00000002": {
                    "kind": "withdraw",
                    "status": "applied",
                    "version": 6,
                    "withdraws": ["cmd-00000001"],
                    "issued_at": "2026-11-24T12:00:00.250Z",
                    "expires_at": "2026-11-25T12:00:00.250Z",
                    "at": "2026-11-24T12:00:01Z",
                },
            },
        }
    )
    view = twin_view(twin, [], datetime(2026, 11, 24, 12, 0, 2, tzinfo=UTC))
    twin_point, *commands = _lines("twins", view)
    assert twin_point.startswith("twin,")
    assert commands == [
        (
            "command_status,command=cmd-00000001,device_id=pump-0001,device_type=infusion_pump "
            'changes="{\\"rate\\":800.0}",kind="set_desired",'
            'reason="rate: 800 mL/h is beyond this make [out_of_range]",status="rejected",'
            "twin_version=5i 1795521600250"
        ),
        (
            "command_status,command=cmd-00000002,device_id=pump-0001,device_type=infusion_pump "
            'changes="{}",kind="withdraw",status="applied",twin_version=6i 1795521601000'
        ),
    ]
