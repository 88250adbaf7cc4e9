"""The schemas are the contract: what each producer writes on a Kafka topic validates into the
model the sink decodes that topic with (:mod:`twin_stream.sink.points`).

* ``telemetry``: the bridge forwards the reading it validated (``routing.route``), the sink
  decodes it with the same schema (``messages.decode_telemetry``);
* ``scores``: the worker writes :class:`ScoreRecord` (one, or a micro-batch's array of them),
  the sink reads :class:`AnomalyScore`;
* ``predictions``: the worker writes :class:`PredictionRecord`, the sink reads
  :class:`Prediction` (the model an alert carries);
* ``alerts``: the worker writes the model itself;
* ``twins``: the worker writes ``twin_view``'s dict, the sink reads :class:`TwinView`;
* ``dlq``: the bridge and the worker both write ``routing.dead_letter``'s record, the sink reads
  :class:`DeadLetter`;
* ``audit``: the twin API writes :class:`AuditRecord` (``audit_views.audit``), the sink reads it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from twin_stream.auth import Principal
from twin_stream.bridge.routing import dead_letter, rejection_reason, route
from twin_stream.domain import alert_lifecycle
from twin_stream.domain.batches import encode_scores
from twin_stream.domain.events import (
    Alert,
    AnomalyScore,
    Contribution,
    Prediction,
    PredictionRecord,
    ScoreRecord,
)
from twin_stream.domain.messages import decode_telemetry, parse_telemetry
from twin_stream.domain.records import AuditRecord, DeadLetter, TwinView
from twin_stream.domain.twin import Twin
from twin_stream.errors import PayloadRejected
from twin_stream.sink.points import to_points
from twin_stream.worker.audit_views import audit
from twin_stream.worker.processing import DeviceState, twin_view
from twin_stream.worker.publishing import Publisher, failure_reason
from twin_stream.worker.web_auth import PRINCIPAL

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
READING = (
    b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":7,'
    b'"ts":"2026-11-24T11:59:59.25Z","fw":"2.4.1","metrics":{"motor_current":0.31,"battery":null}}'
)


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


# --- telemetry ---------------------------------------------------------------------------


def test_the_bridges_telemetry_decodes_into_the_reading_it_validated() -> None:
    routed = route("twin/v1/devices/pump-0001/telemetry", READING, now=NOW)
    assert routed.kafka_topic == "twin.telemetry"
    validated = parse_telemetry(READING, now=NOW)
    decoded = decode_telemetry(routed.value)
    assert type(decoded) is type(validated) and decoded == validated
    assert to_points("telemetry", routed.value)


def test_telemetry_read_late_still_decodes() -> None:
    # The bridge checks the device's clock against its own; the sink writes a reading at its
    # own time however late the record is read (a backlog, a replay).
    routed = route("twin/v1/devices/pump-0001/telemetry", READING, now=NOW)
    assert decode_telemetry(routed.value).seq == 7
    with pytest.raises(PayloadRejected, match="in the past"):
        parse_telemetry(routed.value, now=NOW + timedelta(days=2))


# --- scores ------------------------------------------------------------------------------

SCORES = [
    ScoreRecord(
        "pump-0001",
        "infusion_pump",
        datetime(2026, 11, 24, 11, 59, 59, 250000, tzinfo=UTC),
        5,
        7,
        0.8125,
        {"motor_current": 3.5, "flow_rate": -0.25},
        "ts-detector/2",
        warming_up=False,
        in_control=False,
    ),
    ScoreRecord("vent-0002", "ventilator", NOW, 1, 1, 0.0, {}, "ts-detector/2", warming_up=True),
    ScoreRecord("mri-0005", "mri_chiller", NOW, 9, 9, 1.0, {"helium_level": -6.0}, "d/3"),
]


def test_score_record_and_anomaly_score_have_the_same_fields() -> None:
    assert {f.name for f in dataclasses.fields(ScoreRecord)} == _fields(AnomalyScore)


@pytest.mark.parametrize("record", SCORES, ids=lambda r: r.device_id)
def test_a_score_record_is_an_anomaly_score_field_for_field(record: ScoreRecord) -> None:
    raw = record.to_json()
    score = AnomalyScore.model_validate_json(raw)
    assert score.model_dump() == dataclasses.asdict(record)
    # ... and the model writes the very same JSON back.
    assert orjson.loads(score.model_dump_json()) == orjson.loads(raw)
    assert len(to_points("scores", raw)) == 1


def test_a_micro_batch_of_scores_is_an_array_of_anomaly_scores() -> None:
    raw = encode_scores(SCORES)
    scores = TypeAdapter(list[AnomalyScore]).validate_json(raw)
    assert [s.model_dump() for s in scores] == [dataclasses.asdict(r) for r in SCORES]
    assert len(to_points("scores", raw)) == len(SCORES)


# --- predictions and alerts --------------------------------------------------------------

PREDICTION = Prediction(
    device_id="pump-0001",
    device_type="infusion_pump",
    metric="motor_current",
    ts=NOW,
    value=0.61,
    limit=0.8,
    trend_per_h=0.0125,
    time_to_failure_h=15.2,
    lower_h=9.5,
    upper_h=30.0,
    detector_version="ts-detector/2",
)
ALERT = Alert(
    alert_id="pump-0001-anomaly-1",
    device_id="pump-0001",
    device_type="infusion_pump",
    kind="anomaly",
    severity="warning",
    state="open",
    opened_at=NOW,
    ts=NOW,
    summary="motor_current unusual",
    contributions=[Contribution(metric="motor_current", value=0.6, baseline=0.3, deviation=4.5)],
    seq_first=5,
    seq_last=7,
    detector_version="ts-detector/2",
    details={"score": 0.9, "signals": ["motor_current"]},
)
ALERTS = [
    ALERT,
    ALERT.model_copy(
        update={
            "kind": "predicted_failure",
            "severity": "critical",
            "state": "updated",
            "revision": 1,
            "prediction": PREDICTION,
            "contributions": [],
        }
    ),
    ALERT.model_copy(
        update={
            "state": "resolved",
            "resolved_at": NOW + timedelta(minutes=12, microseconds=250),
            "ts": NOW + timedelta(minutes=12, microseconds=250),
            "revision": 2,
        }
    ),
]
# People's part of an alert's life: acknowledged, shelved, returned, re-notified.
_ACKED = alert_lifecycle.acknowledge(ALERTS[0], by="alice", at=NOW, note="on it")
assert isinstance(_ACKED, Alert)
_SHELVED = alert_lifecycle.shelve(_ACKED, by="bob", at=NOW, minutes=30, max_minutes=480)
assert isinstance(_SHELVED, Alert)
ALERTS += [
    _ACKED,
    _SHELVED,
    alert_lifecycle.unshelve(_SHELVED, NOW + timedelta(minutes=30)),
    alert_lifecycle.renotify(ALERTS[0], NOW + timedelta(minutes=15)),
]


RECORDS = [
    PredictionRecord(**PREDICTION.model_dump()),
    PredictionRecord(**PREDICTION.model_copy(update={"time_to_failure_h": None}).model_dump()),
    PredictionRecord(
        "vent-0002",
        "ventilator",
        "leak_rate",
        NOW + timedelta(microseconds=5),
        -0.0,
        2.5,
        1e-7,
        0.0,
        None,
        None,
        "d/3",
    ),
]


def test_prediction_record_and_prediction_have_the_same_fields() -> None:
    assert [f.name for f in dataclasses.fields(PredictionRecord)] == list(Prediction.model_fields)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.device_id)
def test_a_prediction_as_the_worker_sends_it_is_a_prediction(record: PredictionRecord) -> None:
    raw = record.to_json()  # as Publisher.publish sends it
    prediction = Prediction.model_validate_json(raw)
    assert prediction.model_dump() == dataclasses.asdict(record)
    assert prediction == record.to_model()
    # ... the very JSON the model writes (the bytes, with the same field order and formats).
    assert raw == prediction.model_dump_json().encode()
    assert len(to_points("predictions", raw)) == 1


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a.state)
def test_an_alert_as_the_worker_sends_it_decodes_into_itself(alert: Alert) -> None:
    raw = alert.model_dump_json().encode()  # as Publisher.publish sends it
    assert Alert.model_validate_json(raw) == alert
    # Its series, its other severities', and its page's if it pages (not once acknowledged).
    assert len(to_points("alerts", raw)) == 3 + alert.pages


# --- twins -------------------------------------------------------------------------------


def _busy_twin() -> DeviceState:
    """A twin with something in every field: reported and desired settings, a delta, a
    reading, a command, a dead letter."""
    state = DeviceState.new("pump-0001")
    report = {
        "v": 1,
        "device_id": "pump-0001",
        "ts": "2026-11-24T11:59:00Z",
        "seq": 0,
        "settings": {"rate": 100.0, "sample_interval_s": 1.0, "maintenance_epoch": 2},
        "command_id": "cmd-00000001",
    }
    state.on_reported(orjson.dumps(report), now=NOW)
    state.on_telemetry(READING, now=NOW)  # its type first: a command is checked against it
    command = {
        "command_id": "cmd-00000002",
        "device_id": "pump-0001",
        "kind": "set_rate",
        "desired": {"rate": 120.0},
        "issued_at": "2026-11-24T11:59:30Z",
        "expires_at": "2026-11-25T11:59:30Z",
    }
    state.on_command(orjson.dumps(command), now=NOW)
    state.on_dead_letter()
    return state


def test_twin_view_writes_the_same_json_as_always() -> None:
    state = _busy_twin()
    view = twin_view(state.twin, [ALERT], NOW + timedelta(seconds=1, microseconds=500))
    assert orjson.dumps(view) == (
        b'{"device_id":"pump-0001","device_type":"infusion_pump","version":4,'
        b'"reported":{"rate":100.0,"sample_interval_s":1.0,"maintenance_epoch":2},'
        b'"desired":{"rate":120.0},"delta":{"rate":120.0},"metrics":{"motor_current":0.31},'
        b'"metrics_ts":"2026-11-24T11:59:59.250000Z","last_seen":"2026-11-24T12:00:00Z",'
        b'"connectivity":"online","firmware":"2.4.1","health":"ok",'
        b'"last_command_id":"cmd-00000001","last_seq":7,'
        b'"quality":{"accepted":1,"duplicates":0,"reordered":0,"stale":0,"invalid":1,"gaps":0,'
        b'"dropouts":3,"restarts":0},'
        b'"commands":{"cmd-00000002":{"kind":"set_rate","status":"pending","version":4,'
        b'"changes":{"rate":120.0},"previous":{"rate":null},"withdraws":[],'
        b'"issued_at":"2026-11-24T11:59:30Z","expires_at":"2026-11-25T11:59:30Z",'
        b'"at":"2026-11-24T12:00:00Z","reason":null}},'
        b'"open_alerts":[' + ALERT.model_dump_json().encode() + b"],"
        b'"changed_at":"2026-11-24T12:00:01.000500+00:00"}'
    )


def test_twin_view_is_a_twin_view_key_for_key() -> None:
    state = _busy_twin()
    changed_at = NOW + timedelta(seconds=1)
    view = twin_view(state.twin, ALERTS[:2], changed_at)
    assert set(view) == _fields(TwinView)
    decoded = TwinView.model_validate_json(orjson.dumps(view))
    twin = state.twin.model_dump(exclude={"seen_mask"})
    assert decoded.model_dump(exclude={"open_alerts", "changed_at"}) == twin
    assert decoded.open_alerts == ALERTS[:2] and decoded.changed_at == changed_at
    # The twin's point, and one per command it remembers.
    assert [p._name for p in to_points("twins", orjson.dumps(view))] == ["twin", "command_status"]


def test_twin_view_has_the_twins_fields_but_its_window() -> None:
    # A field added to the twin is published in its view: the view's schema must follow.
    assert _fields(TwinView) == _fields(Twin) - {"seen_mask"} | {"open_alerts", "changed_at"}


def test_a_new_twins_view_decodes_too() -> None:
    view = twin_view(Twin(device_id="mon-0003"), [], NOW)
    decoded = TwinView.model_validate_json(orjson.dumps(view))
    assert decoded.device_type is None and decoded.metrics_ts is None


# --- dead letters ------------------------------------------------------------------------


def _bridge_letters() -> list[bytes]:
    bad_reading = READING.replace(b'"seq":7', b'"seq":-1')
    letters = [
        route("twin/v1/devices/pump-0001/telemetry", bad_reading, now=NOW),
        route("twin/v1/devices/pump-0002/telemetry", READING, now=NOW),  # device mismatch
        route("elsewhere/pump-0001", b"\x00\xff", now=NOW),  # no device
        route("twin/v1/devices/pump-0001/status", b"{", now=NOW),
    ]
    assert all(r.kafka_topic == "twin.dlq" for r in letters)
    return [r.value for r in letters]


class _Topic:
    def __init__(self, name: str, sent: list[bytes]) -> None:
        self.name, self.sent = name, sent

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, key: bytes | None, value: bytes) -> None:
        self.sent.append(value)


def _worker_letters() -> list[bytes]:
    """Dead letters as the worker's publisher sends them: an invalid record (pydantic's
    reason), a record whose processing failed, a record without a key, a bad command."""
    sent: list[bytes] = []
    kinds = ("telemetry", "status", "commands", "dlq")
    publisher = Publisher({kind: _Topic(f"twin.{kind}", sent) for kind in kinds})
    with pytest.raises(ValidationError) as e:
        Alert.model_validate_json(b"{}")
    invalid = rejection_reason(e.value)
    letters: list[tuple[str, str | None, bytes, str]] = [
        ("status", "pump-0001", b'{"state":"sleepy"}', invalid),
        ("telemetry", "pump-0001", READING, failure_reason(KeyError("motor_current"))),
        ("telemetry", None, READING, "(key): a record without a device_id key [missing_key]"),
        ("commands", "pump-0001", b"{}", rejection_reason(ValueError("no command"))),
        ("telemetry", "not a device", b"", failure_reason(RuntimeError("x"))),
    ]

    async def send_all() -> None:
        for kind, device_id, value, reason in letters:
            await publisher.dead_letter(kind, device_id, value, reason, NOW)

    asyncio.run(send_all())
    assert len(sent) == len(letters)
    return sent


@pytest.mark.parametrize("letters", [_bridge_letters, _worker_letters], ids=["bridge", "worker"])
def test_the_dead_letters_of_the_bridge_and_the_worker_are_dead_letters(letters: Any) -> None:
    for raw in letters():
        body = orjson.loads(raw)
        assert set(body) == _fields(DeadLetter)
        letter = DeadLetter.model_validate_json(raw)
        assert letter.received_at == NOW
        assert letter.model_dump(mode="json", exclude={"received_at"}) == {
            k: v for k, v in body.items() if k != "received_at"
        }
        base64.b64decode(letter.payload_base64, validate=True)
        (point,) = to_points("dlq", raw)
        assert point._tags["rule"] != "unknown", letter.reason  # its rule, from its reason


def test_a_dead_letter_without_a_device_says_so() -> None:
    raw = dead_letter("elsewhere", b"", "(topic): nowhere [bad_topic]", NOW).value
    assert DeadLetter.model_validate_json(raw).device_id is None


# --- audit -------------------------------------------------------------------------------


def test_an_audit_record_as_the_twin_api_sends_it_decodes_into_itself() -> None:
    sent: list[bytes] = []
    request = {PRINCIPAL: Principal("alice", "operator")}  # what the guard leaves on a request
    record = asyncio.run(
        audit(
            _Topic("twin.audit", sent),
            request,
            action="set_desired",
            device_id="pump-0001",
            device_type="infusion_pump",
            old={"rate": 100.0},
            new={"rate": 80.0},
            command_id="cmd-00000002",
            now=NOW,
        )
    )
    (raw,) = sent
    assert AuditRecord.model_validate_json(raw) == record
    assert set(orjson.loads(raw)) == _fields(AuditRecord)
    assert (record.actor, record.role, record.at) == ("alice", "operator", NOW)
    (point,) = to_points("audit", raw)
    assert point._tags["actor"] == "alice" and point._fields["command_id"] == "cmd-00000002"


# --- desired documents and acks ----------------------------------------------------------


def test_a_desired_document_is_what_the_bridge_delivers_and_the_device_parses() -> None:
    """``twin.desired``: the worker writes :class:`Command` (the whole desired document), the
    downlink reads it with the same model and publishes the :class:`DesiredMessage` a device
    parses; the device's acks (``twin.acks``: :class:`CommandAck`, as the bridge forwards
    them) are what the worker's acks agent reads."""
    from simulators.device import SimulatedDevice
    from twin_stream.bridge.downlink import desired_message
    from twin_stream.domain.events import Command
    from twin_stream.domain.messages import CommandAck, DesiredMessage, parse_payload

    state = _busy_twin()
    (raw,) = [
        d.model_dump_json().encode()
        for d in state.on_command(
            orjson.dumps(
                {
                    "command_id": "cmd-00000003",
                    "device_id": "pump-0001",
                    "kind": "set_desired",
                    "desired": {"sample_interval_s": 2.0},
                    "issued_at": NOW.isoformat(),
                    "expires_at": (NOW + timedelta(hours=1)).isoformat(),
                }
            ),
            now=NOW,
        ).documents
    ]
    document = Command.model_validate_json(raw)  # the downlink's model
    payload = desired_message(document).model_dump_json(exclude_none=True).encode()
    message = parse_payload(DesiredMessage, payload)
    assert message.desired.as_dict() == {"rate": 120.0, "sample_interval_s": 2.0}
    assert message.twin_version == state.twin.version
    device = SimulatedDevice.create("pump-0001", "infusion_pump", seed=1)
    for ack in device.receive(message, t_s=0, wall=NOW):
        forwarded = route("twin/v1/devices/pump-0001/ack", ack.model_dump_json().encode(), now=NOW)
        assert forwarded.kafka_topic == "twin.acks"
        assert CommandAck.model_validate_json(forwarded.value) == ack
        state.on_ack(forwarded.value, now=NOW)
    statuses = {c: r.status for c, r in state.twin.commands.items()}
    assert statuses == {"cmd-00000002": "applied", "cmd-00000003": "applied"}
