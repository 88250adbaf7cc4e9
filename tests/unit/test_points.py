"""Records -> points: the measurements dashboards and alert rules query."""

from __future__ import annotations

import orjson
import pytest

from twin_stream.errors import PayloadRejected
from twin_stream.sink.points import to_points


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
    view = {
        "device_id": "pump-0001",
        "device_type": "infusion_pump",
        "version": 4,
        "connectivity": "online",
        "changed_at": "2026-11-24T12:00:00+00:00",
        "reported": {"rate": 100.0, "sample_interval_s": 1.0, "maintenance_epoch": 0},
        "desired": {"rate": 120.0},
        "delta": {"rate": 120.0},
        "quality": {"invalid": 2},
        "health": "ok",
    }
    line = to_points("twins", orjson.dumps(view))[0].to_line_protocol()
    for field in ("reported_rate=100", "desired_rate=120", "delta_size=1i", "quality_invalid=2i"):
        assert field in line


def test_a_record_that_is_not_a_measurement_is_refused_with_its_kind() -> None:
    with pytest.raises(PayloadRejected, match="dlq"):
        to_points("dlq", b'{"device_id": "x"}')
