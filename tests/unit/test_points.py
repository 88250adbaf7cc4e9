"""Records -> points: the measurements dashboards and alert rules query.

``SAME_POINTS`` pins the line protocol of a representative record of every kind, as the
producers write them (the bridge's telemetry, the worker's scores, predictions, alerts and
twins, the bridge's and the worker's dead letters, the twin API's audit records): decoding
records into their models must not change one tag, field or timestamp of what the sink writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from twin_stream.domain.twin import Twin
from twin_stream.errors import PayloadRejected
from twin_stream.sink.points import MEASUREMENTS, to_points
from twin_stream.worker.processing import twin_view

SAME_POINTS = [
    pytest.param(
        "telemetry",
        {
            "v": 1,
            "ts": "2026-11-24T11:59:59.250000Z",
            "device_id": "pump-0001",
            "seq": 7,
            "fw": "2.4.1",
            "device_type": "infusion_pump",
            "metrics": {
                "flow_rate": 120.0,
                "line_pressure": None,
                "motor_current": 0.31,
                "battery": None,
            },
        },
        [
            (
                "telemetry,device_id=pump-0001,device_type=infusion_pump flow_rate=120,"
                "motor_current=0.31,seq=7i 1795521599250"
            ),
        ],
        id="telemetry-with-dropouts",
    ),
    pytest.param(
        "telemetry",
        {
            "v": 1,
            "ts": "2026-11-24T11:59:58+01:00",
            "device_id": "mri-0005",
            "seq": 123456,
            "fw": "1.0.0",
            "device_type": "mri_chiller",
            "metrics": {
                "helium_level": 71.5,
                "compressor_temp": 42.25,
                "coldhead_temp": 4.1,
                "cooling_water_flow": 20.0,
            },
        },
        [
            (
                "telemetry,device_id=mri-0005,device_type=mri_chiller coldhead_temp=4.1,"
                "compressor_temp=42.25,cooling_water_flow=20,helium_level=71.5,seq=123456i "
                "1795517998000"
            ),
        ],
        id="telemetry-at-an-offset",
    ),
    pytest.param(
        "scores",
        {
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "ts": "2026-11-24T11:59:59.250000Z",
            "seq_first": 5,
            "seq_last": 7,
            "score": 0.8125,
            "contributions": {
                "motor_current": 3.5,
                "flow_rate": -0.25,
            },
            "detector_version": "ts-detector/2",
            "warming_up": False,
            "in_control": False,
        },
        [
            (
                "anomaly,detector_version=ts-detector/2,device_id=pump-0001,"
                "device_type=infusion_pump score=0.8125,seq=7i,warming_up=false,"
                "z_flow_rate=-0.25,z_motor_current=3.5 1795521599250"
            ),
        ],
        id="scores",
    ),
    pytest.param(
        "scores",
        {
            "device_id": "vent-0002",
            "device_type": "ventilator",
            "ts": "2026-11-24T12:00:00Z",
            "seq_first": 1,
            "seq_last": 1,
            "score": 0.0,
            "contributions": {},
            "detector_version": "ts-detector/2",
            "warming_up": True,
            "in_control": True,
        },
        [
            (
                "anomaly,detector_version=ts-detector/2,device_id=vent-0002,"
                "device_type=ventilator score=0,seq=1i,warming_up=true 1795521600000"
            ),
        ],
        id="scores-warming-up",
    ),
    pytest.param(
        "predictions",
        {
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "metric": "motor_current",
            "ts": "2026-11-24T12:00:00Z",
            "value": 0.61,
            "limit": 0.8,
            "trend_per_h": 0.0125,
            "time_to_failure_h": 15.2,
            "lower_h": 9.5,
            "upper_h": 30.0,
            "detector_version": "ts-detector/2",
        },
        [
            (
                "prediction,device_id=pump-0001,device_type=infusion_pump,metric=motor_current "
                "limit=0.8,lower_h=9.5,time_to_failure_h=15.2,trend_per_h=0.0125,upper_h=30,"
                "value=0.61 1795521600000"
            ),
        ],
        id="prediction",
    ),
    pytest.param(
        "predictions",
        {
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "metric": "battery",
            "ts": "2026-11-24T12:00:00Z",
            "value": 50.0,
            "limit": 10.0,
            "trend_per_h": 0.5,
            "time_to_failure_h": None,
            "lower_h": None,
            "upper_h": None,
            "detector_version": "ts-detector/2",
        },
        [
            (
                "prediction,device_id=pump-0001,device_type=infusion_pump,metric=battery "
                "limit=10,trend_per_h=0.5,value=50 1795521600000"
            ),
        ],
        id="prediction-trending-away",
    ),
    pytest.param(
        "alerts",
        {
            "alert_id": "pump-0001-anomaly-1",
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "kind": "anomaly",
            "severity": "warning",
            "state": "open",
            "opened_at": "2026-11-24T12:00:00Z",
            "resolved_at": None,
            "ts": "2026-11-24T12:00:00Z",
            "summary": "motor_current unusual",
            "contributions": [
                {
                    "metric": "motor_current",
                    "value": 0.6,
                    "baseline": 0.3,
                    "deviation": 4.5,
                },
            ],
            "prediction": None,
            "seq_first": 5,
            "seq_last": 7,
            "detector_version": "ts-detector/2",
            "revision": 0,
            "details": {
                "score": 0.9,
            },
        },
        [
            (
                "alert,alert=pump-0001-anomaly-1,device_id=pump-0001,device_type=infusion_pump,"
                'kind=anomaly,severity=warning alert_id="pump-0001-anomaly-1",open=1i,pages=1i,'
                'revision=0i,state="open",summary="motor_current unusual" 1795521600000'
            ),
            (
                "alert,alert=pump-0001-anomaly-1,device_id=pump-0001,device_type=infusion_pump,"
                "kind=anomaly,severity=info open=0i 1795521600000"
            ),
            (
                "alert,alert=pump-0001-anomaly-1,device_id=pump-0001,device_type=infusion_pump,"
                "kind=anomaly,severity=critical open=0i 1795521600000"
            ),
            (  # it pages: its notification's point, what it says as tags
                "alert_page,alert=pump-0001-anomaly-1,device_id=pump-0001,"
                "device_type=infusion_pump,event=open,kind=anomaly,page=0,severity=warning,"
                "summary=motor_current\\ unusual revision=0i 1795521600000"
            ),
        ],
        id="alert-open",
    ),
    pytest.param(
        "alerts",
        {
            "alert_id": "pump-0001-pf-1",
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "kind": "predicted_failure",
            "severity": "critical",
            "state": "updated",
            "opened_at": "2026-11-24T12:00:00Z",
            "resolved_at": None,
            "ts": "2026-11-24T12:05:00Z",
            "summary": "motor_current to fail in 15.2 h",
            "contributions": [],
            "prediction": {
                "device_id": "pump-0001",
                "device_type": "infusion_pump",
                "metric": "motor_current",
                "ts": "2026-11-24T12:00:00Z",
                "value": 0.61,
                "limit": 0.8,
                "trend_per_h": 0.0125,
                "time_to_failure_h": 15.2,
                "lower_h": 9.5,
                "upper_h": 30.0,
                "detector_version": "ts-detector/2",
            },
            "seq_first": None,
            "seq_last": None,
            "detector_version": "ts-detector/2",
            "revision": 2,
            "details": {},
        },
        [
            (
                "alert,alert=pump-0001-pf-1,device_id=pump-0001,device_type=infusion_pump,"
                'kind=predicted_failure,severity=critical alert_id="pump-0001-pf-1",open=1i,'
                'pages=1i,revision=2i,state="updated",summary="motor_current to fail in 15.2 h" '
                "1795521900000"
            ),
            (
                "alert,alert=pump-0001-pf-1,device_id=pump-0001,device_type=infusion_pump,"
                "kind=predicted_failure,severity=info open=0i 1795521900000"
            ),
            (
                "alert,alert=pump-0001-pf-1,device_id=pump-0001,device_type=infusion_pump,"
                "kind=predicted_failure,severity=warning open=0i 1795521900000"
            ),
            (
                "alert_page,alert=pump-0001-pf-1,device_id=pump-0001,device_type=infusion_pump,"
                "event=updated,kind=predicted_failure,page=2,severity=critical,"
                "summary=motor_current\\ to\\ fail\\ in\\ 15.2\\ h revision=2i 1795521900000"
            ),
        ],
        id="alert-updated-to-critical",
    ),
    pytest.param(
        "alerts",
        {
            "alert_id": "pump-0001-anomaly-1",
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "kind": "anomaly",
            "severity": "info",
            "state": "resolved",
            "opened_at": "2026-11-24T12:00:00Z",
            "resolved_at": "2026-11-24T12:12:30.250000Z",
            "ts": "2026-11-24T12:12:30.250000Z",
            "summary": "motor_current unusual",
            "contributions": [
                {
                    "metric": "motor_current",
                    "value": 0.6,
                    "baseline": 0.3,
                    "deviation": 4.5,
                },
            ],
            "prediction": None,
            "seq_first": 5,
            "seq_last": 7,
            "detector_version": "ts-detector/2",
            "revision": 3,
            "details": {
                "score": 0.9,
            },
        },
        [
            (
                "alert,alert=pump-0001-anomaly-1,device_id=pump-0001,device_type=infusion_pump,"
                'kind=anomaly,severity=info alert_id="pump-0001-anomaly-1",duration_s=750.25,'
                'open=0i,pages=0i,revision=3i,state="resolved",summary="motor_current unusual" '
                "1795522350250"
            ),
            (
                "alert,alert=pump-0001-anomaly-1,device_id=pump-0001,device_type=infusion_pump,"
                "kind=anomaly,severity=warning open=0i 1795522350250"
            ),
            (
                "alert,alert=pump-0001-anomaly-1,device_id=pump-0001,device_type=infusion_pump,"
                "kind=anomaly,severity=critical open=0i 1795522350250"
            ),
        ],
        id="alert-resolved",
    ),
    pytest.param(
        "twins",
        {
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "version": 4,
            "reported": {
                "rate": 100.0,
                "sample_interval_s": 1.0,
                "maintenance_epoch": 2,
            },
            "desired": {
                "rate": 120.0,
            },
            "delta": {
                "rate": 120.0,
            },
            "metrics": {
                "motor_current": 0.31,
            },
            "metrics_ts": "2026-11-24T11:59:59Z",
            "last_seen": "2026-11-24T12:00:00Z",
            "connectivity": "online",
            "firmware": "2.4.1",
            "health": "degraded",
            "last_command_id": None,
            "last_seq": 7,
            "quality": {
                "accepted": 1,
                "duplicates": 0,
                "reordered": 0,
                "stale": 0,
                "invalid": 1,
                "gaps": 3,
                "dropouts": 3,
                "restarts": 0,
            },
            "open_alerts": [
                {
                    "alert_id": "pump-0001-anomaly-1",
                    "device_id": "pump-0001",
                    "device_type": "infusion_pump",
                    "kind": "anomaly",
                    "severity": "warning",
                    "state": "open",
                    "opened_at": "2026-11-24T12:00:00Z",
                    "resolved_at": None,
                    "ts": "2026-11-24T12:00:00Z",
                    "summary": "motor_current unusual",
                    "contributions": [
                        {
                            "metric": "motor_current",
                            "value": 0.6,
                            "baseline": 0.3,
                            "deviation": 4.5,
                        },
                    ],
                    "prediction": None,
                    "seq_first": 5,
                    "seq_last": 7,
                    "detector_version": "ts-detector/2",
                    "revision": 0,
                    "details": {
                        "score": 0.9,
                    },
                },
            ],
            "changed_at": "2026-11-24T12:00:01.000500+00:00",
        },
        [
            (
                "twin,connectivity=online,device_id=pump-0001,device_type=infusion_pump "
                'delta_size=1i,desired_rate=120,health="degraded",online=1i,'
                "quality_accepted=1i,quality_dropouts=3i,quality_duplicates=0i,quality_gaps=3i,"
                "quality_invalid=1i,quality_reordered=0i,quality_restarts=0i,quality_stale=0i,"
                "reported_maintenance_epoch=2,reported_rate=100,reported_sample_interval_s=1,"
                "version=4i 1795521601000"
            ),
        ],
        id="twin-with-settings-quality-and-an-alert",
    ),
    pytest.param(
        "twins",
        {
            "device_id": "mon-0003",
            "device_type": None,
            "version": 0,
            "reported": {},
            "desired": {},
            "delta": {},
            "metrics": {},
            "metrics_ts": None,
            "last_seen": None,
            "connectivity": "unknown",
            "firmware": None,
            "health": "unknown",
            "last_command_id": None,
            "last_seq": None,
            "quality": {
                "accepted": 0,
                "duplicates": 0,
                "reordered": 0,
                "stale": 0,
                "invalid": 0,
                "gaps": 0,
                "dropouts": 0,
                "restarts": 0,
            },
            "open_alerts": [],
            "changed_at": "2026-11-24T12:00:00+00:00",
        },
        [
            (
                "twin,connectivity=unknown,device_id=mon-0003,device_type=unknown "
                'delta_size=0i,health="unknown",online=0i,quality_accepted=0i,'
                "quality_dropouts=0i,quality_duplicates=0i,quality_gaps=0i,quality_invalid=0i,"
                "quality_reordered=0i,quality_restarts=0i,quality_stale=0i,version=0i "
                "1795521600000"
            ),
        ],
        id="twin-new",
    ),
    pytest.param(
        "dlq",
        {
            "mqtt_topic": "twin/v1/devices/pump-0001/telemetry",
            "device_id": "pump-0001",
            "reason": "seq: Input should be greater than or equal to 0 [greater_than_equal]",
            "received_at": "2026-11-24T12:00:00+00:00",
            "payload_base64": (
                "eyJ2IjoxLCJkZXZpY2VfaWQiOiJwdW1wLTAwMDEiLCJkZXZpY2VfdHlwZSI6ImluZnVzaW9uX3B1bX"
                "AiLCJzZXEiOi0xLCJ0cyI6IjIwMjYtMTEtMjRUMTE6NTk6NTlaIiwiZnciOiIyLjQuMSIsIm1ldHJp"
                "Y3MiOnt9fQ=="
            ),
        },
        [
            (
                "dead_letter,device_id=pump-0001,rule=greater_than_equal count=1i,"
                'mqtt_topic="twin/v1/devices/pump-0001/telemetry",reason="seq: Input should be '
                'greater than or equal to 0 [greater_than_equal]" 1795521600000000'
            ),
        ],
        id="dead-letter-bridge-invalid",
    ),
    pytest.param(
        "dlq",
        {
            "mqtt_topic": "elsewhere/pump-0001",
            "device_id": None,
            "reason": (
                "(topic): topic 'elsewhere/pump-0001' is not under twin/v1/devices/ [bad_topic]"
            ),
            "received_at": "2026-11-24T12:00:00.000007+00:00",
            "payload_base64": "AP8=",
        },
        [
            (
                "dead_letter,device_id=unknown,rule=bad_topic count=1i,"
                'mqtt_topic="elsewhere/pump-0001",reason="(topic): topic '
                "'elsewhere/pump-0001' is not under twin/v1/devices/ [bad_topic]\" "
                "1795521600000007"
            ),
        ],
        id="dead-letter-bridge-no-device",
    ),
    pytest.param(
        "dlq",
        {
            "mqtt_topic": "twin/v1/devices/pump-0001/status",
            "device_id": "pump-0001",
            "reason": "alert_id: Field required (and 9 more) [missing]",
            "received_at": "2026-11-24T12:00:00.003000+00:00",
            "payload_base64": "eyJzdGF0ZSI6InNsZWVweSJ9",
        },
        [
            (
                "dead_letter,device_id=pump-0001,rule=missing count=1i,"
                'mqtt_topic="twin/v1/devices/pump-0001/status",reason="alert_id: Field '
                'required (and 9 more) [missing]" 1795521600003000'
            ),
        ],
        id="dead-letter-worker-invalid",
    ),
    pytest.param(
        "dlq",
        {
            "mqtt_topic": "twin.commands",
            "device_id": "pump-0001",
            "reason": "(worker): KeyError: 'motor_current' [processing_failed]",
            "received_at": "2026-11-24T12:00:00+00:00",
            "payload_base64": "e30=",
        },
        [
            (
                "dead_letter,device_id=pump-0001,rule=processing_failed count=1i,"
                'mqtt_topic="twin.commands",reason="(worker): KeyError: \'motor_current\' '
                '[processing_failed]" 1795521600000000'
            ),
        ],
        id="dead-letter-worker-failed",
    ),
    pytest.param(
        "dlq",
        {
            "mqtt_topic": "twin.telemetry",
            "device_id": None,
            "reason": "(key): a record without a device_id key [missing_key]",
            "received_at": "2026-11-24T12:00:00+00:00",
            "payload_base64": "e30=",
        },
        [
            (
                "dead_letter,device_id=unknown,rule=missing_key count=1i,"
                'mqtt_topic="twin.telemetry",reason="(key): a record without a device_id key '
                '[missing_key]" 1795521600000000'
            ),
        ],
        id="dead-letter-worker-no-key",
    ),
    pytest.param(
        "audit",
        {
            "audit_id": "9f1c2b3a4d5e6f708192a3b4c5d6e7f8",
            "at": "2026-11-24T12:00:00.000250Z",
            "actor": "alice",
            "role": "operator",
            "action": "set_desired",
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "old": {"rate": 100.0, "sample_interval_s": 1.0},
            "new": {"sample_interval_s": 1.0, "rate": 80.0},
            "command_id": "cmd-00000002",
            "subject": None,
        },
        [
            (
                "audit,action=set_desired,actor=alice,device_id=pump-0001,"
                'device_type=infusion_pump audit_id="9f1c2b3a4d5e6f708192a3b4c5d6e7f8",'
                'command_id="cmd-00000002",new="{\\"rate\\":80.0,\\"sample_interval_s\\":1.0}",'
                'old="{\\"rate\\":100.0,\\"sample_interval_s\\":1.0}",role="operator" '
                "1795521600000250"
            ),
        ],
        id="audit-desired-state",
    ),
    pytest.param(
        "audit",
        {
            "audit_id": "0a1b2c3d",
            "at": "2026-11-24T12:00:00+00:00",
            "actor": "night-shift",
            "role": "admin",
            "action": "alert_ack",
            "device_id": "vent-0002",
            "device_type": None,
            "old": {"state": "open"},
            "new": {"state": "acknowledged"},
            "command_id": None,
            "subject": "vent-0002-anomaly-3",
        },
        [
            (
                "audit,action=alert_ack,actor=night-shift,device_id=vent-0002,"
                'device_type=unknown audit_id="0a1b2c3d",new="{\\"state\\":\\"acknowledged\\"}",'
                'old="{\\"state\\":\\"open\\"}",role="admin",subject="vent-0002-anomaly-3" '
                "1795521600000000"
            ),
        ],
        id="audit-alert-acknowledged",
    ),
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
