"""Kafka records -> InfluxDB points. Pure: each record is decoded once into the model of its
topic (the topic's schema: :mod:`twin_stream.domain.events`, and the bridge's telemetry schema),
then one function per measurement builds its points from that model.

Every point is tagged ``device_id`` and ``device_type`` and timestamped by the event's own time
(ms), so writing the same record twice lands on the same series and timestamp (idempotent).

>>> record = (b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":7,'
...           b'"ts":"2026-11-24T11:59:59Z","fw":"2.4.1","metrics":{"motor_current":0.31}}')
>>> to_points("telemetry", record)[0].to_line_protocol()
'telemetry,device_id=pump-0001,device_type=infusion_pump motor_current=0.31,seq=7i 1795521599000'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

import orjson
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision
from pydantic import TypeAdapter, ValidationError

from twin_stream.domain import events, messages, records
from twin_stream.errors import PayloadRejected
from twin_stream.sink.measurements import (
    DEVICE_ID,
    DEVICE_TYPE,
    MEASUREMENT_OF_KIND,
    Alert,
    AlertPage,
    Anomaly,
    Audit,
    CommandStatus,
    DeadLetter,
    Prediction,
    Telemetry,
    Twin,
)

__all__ = ["MEASUREMENTS", "dead_letter_point", "to_points"]


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _base(measurement: str, device_id: str, device_type: str | None, ts: datetime) -> Point:
    point = Point(measurement)
    point.tag(DEVICE_ID, device_id)
    point.tag(DEVICE_TYPE, device_type or "unknown")
    point.time(_ms(ts), WritePrecision.MS)
    return point


def _telemetry(reading: messages.Telemetry) -> list[Point]:
    point = _base(Telemetry.NAME, reading.device_id, reading.device_type, reading.ts)
    point.field(Telemetry.SEQ, reading.seq)
    for name, value in reading.metrics:
        if value is not None:  # a dropout: no value this time
            point.field(name, float(value))
    return [point]


#: A scores record is one score, or a JSON array of one device's scores (the worker's
#: micro-batches, :func:`twin_stream.domain.batches.encode_scores`).
_SCORE_BATCH: Final[TypeAdapter[list[events.AnomalyScore]]] = TypeAdapter(list[events.AnomalyScore])


def _decode_scores(value: bytes) -> list[events.AnomalyScore]:
    if value.lstrip()[:1] == b"[":
        return _SCORE_BATCH.validate_json(value)
    return [events.AnomalyScore.model_validate_json(value)]


def _anomaly(scores: list[events.AnomalyScore]) -> list[Point]:
    """One point per score."""
    points = []
    for score in scores:
        point = _base(Anomaly.NAME, score.device_id, score.device_type, score.ts)
        point.field(Anomaly.SCORE, score.score)
        point.field(Anomaly.SEQ, score.seq_last)
        point.field(Anomaly.WARMING_UP, score.warming_up)
        point.tag(Anomaly.DETECTOR_VERSION, score.detector_version)
        if score.health is not None:
            point.field(Anomaly.HEALTH, score.health)
            point.field(Anomaly.HEALTH_STAGE, score.health_stage)
        for name, deviation in score.contributions.items():
            point.field(f"{Anomaly.DEVIATION_PREFIX}{name}", deviation)
        points.append(point)
    return points


def _prediction(prediction: events.Prediction) -> list[Point]:
    point = _base(Prediction.NAME, prediction.device_id, prediction.device_type, prediction.ts)
    point.tag(Prediction.METRIC, prediction.metric)
    point.field(Prediction.VALUE, prediction.value)
    point.field(Prediction.LIMIT, prediction.limit)
    point.field(Prediction.TREND_PER_H, prediction.trend_per_h)
    for key, hours in (
        (Prediction.TIME_TO_FAILURE_H, prediction.time_to_failure_h),
        (Prediction.LOWER_H, prediction.lower_h),
        (Prediction.UPPER_H, prediction.upper_h),
    ):
        if hours is not None:
            point.field(key, hours)
    return [point]


def _alert(alert: events.Alert) -> list[Point]:
    """One point per alert event, in the series of its alert (tag ``alert``) and severity; an
    alert is open until its ``resolved`` event (``updated`` keeps it open).

    Severity is a tag, so an alert whose severity changes moves to another series: every event
    also writes ``open=0`` (and nothing else) into the alert's series of the other severities,
    so that "last open per alert and severity" never shows a severity the alert has left.

    An event that pages a person (``Alert.pages``) also writes one ``alert_page`` point: its own
    series (tag ``page``, its revision), tagged with the alert's severity and explanation, for
    Grafana's notification rule.

    >>> alert = events.Alert.model_validate({
    ...     "device_id": "pump-0001", "device_type": "infusion_pump", "kind": "anomaly",
    ...     "severity": "critical", "state": "updated", "alert_id": "a1", "revision": 1,
    ...     "summary": "anomaly", "ts": "2026-01-01T00:00:00Z",
    ...     "opened_at": "2026-01-01T00:00:00Z", "detector_version": "d"})
    >>> [(p._name, p._tags["severity"], p._fields.get("open")) for p in _alert(alert)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('alert', 'critical', 1), ('alert', 'info', 0), ('alert', 'warning', 0),
     ('alert_page', 'critical', None)]
    """

    def point_in(severity: str) -> Point:
        point = _base(Alert.NAME, alert.device_id, alert.device_type, alert.ts)
        point.tag(Alert.KIND, alert.kind)
        point.tag(Alert.SEVERITY, severity)
        point.tag(Alert.ALERT, alert.alert_id)
        return point

    point = point_in(alert.severity)
    point.field(Alert.STATE, alert.state)
    point.field(Alert.OPEN, 0 if alert.state == "resolved" else 1)
    point.field(Alert.ALERT_ID, alert.alert_id)
    point.field(Alert.SUMMARY, alert.summary)
    point.field(Alert.REVISION, alert.revision)
    point.field(Alert.PAGES, 1 if alert.pages else 0)
    if alert.resolved_at is not None:
        point.field(Alert.DURATION_S, (_ms(alert.resolved_at) - _ms(alert.opened_at)) / 1000)
    if alert.ack is not None:
        point.field(Alert.ACK_BY, alert.ack.by)
    if alert.shelf is not None:
        point.field(Alert.SHELVED_BY, alert.shelf.by)
        point.field(Alert.SHELVED_UNTIL, alert.shelf.until.isoformat())
    if alert.renotified:
        point.field(Alert.RENOTIFIED, alert.renotified)
    others = []
    for other in Alert.SEVERITIES:
        if other != alert.severity:
            closed = point_in(other)
            closed.field(Alert.OPEN, 0)
            others.append(closed)
    if alert.pages:
        others.append(_alert_page(alert))
    return [point, *others]


def _alert_page(alert: events.Alert) -> Point:
    """The ``alert_page`` point of an event that pages: what its notification says, as tags."""
    point = _base(AlertPage.NAME, alert.device_id, alert.device_type, alert.ts)
    point.tag(AlertPage.KIND, alert.kind)
    point.tag(AlertPage.SEVERITY, alert.severity)
    point.tag(AlertPage.ALERT, alert.alert_id)
    summary = " ".join(alert.summary.split())
    if len(summary) > AlertPage.SUMMARY_MAX:
        summary = summary[: AlertPage.SUMMARY_MAX - 3] + "..."
    point.tag(AlertPage.SUMMARY, summary)
    point.tag(AlertPage.EVENT, alert.state)
    point.tag(AlertPage.PAGE, str(alert.revision))
    point.field(AlertPage.REVISION, alert.revision)
    return point


def _twin(view: records.TwinView) -> list[Point]:
    point = _base(Twin.NAME, view.device_id, view.device_type, view.changed_at)
    point.tag(Twin.CONNECTIVITY, view.connectivity)
    point.field(Twin.VERSION, view.version)
    point.field(Twin.ONLINE, 1 if view.connectivity == "online" else 0)
    point.field(Twin.DELTA_SIZE, len(view.delta))
    point.field(Twin.HEALTH, view.health)
    for key, count in view.quality:
        point.field(f"{Twin.QUALITY_PREFIX}{key}", int(count))
    # Numeric settings side by side, for "reported vs desired" (strings stay in the twin API).
    for settings, prefix in (
        (view.reported, Twin.REPORTED_PREFIX),
        (view.desired, Twin.DESIRED_PREFIX),
    ):
        for key, setting in settings.items():
            if isinstance(setting, int | float) and not isinstance(setting, bool):
                point.field(f"{prefix}{key}", float(setting))
    return [point, *_command_statuses(view)]


def _command_statuses(view: records.TwinView) -> list[Point]:
    """One ``command_status`` point per command the twin remembers, at the time it reached
    its status: a command's statuses are its series (tag ``command``), and a twin published
    again writes the same points again (idempotent)."""
    points = []
    for command_id, record in view.commands.items():
        point = _base(CommandStatus.NAME, view.device_id, view.device_type, record.at)
        point.tag(CommandStatus.COMMAND, command_id)
        point.field(CommandStatus.STATUS, record.status)
        point.field(CommandStatus.KIND, record.kind)
        point.field(CommandStatus.TWIN_VERSION, record.version)
        changes = orjson.dumps(record.changes, option=orjson.OPT_SORT_KEYS).decode()
        point.field(CommandStatus.CHANGES, changes)
        if record.reason is not None:
            point.field(CommandStatus.REASON, record.reason)
        points.append(point)
    return points


_RULE = re.compile(r"\[([a-z_]+)\]$")


def dead_letter_point(reason: str, device_id: str | None, source: str, at_us: int) -> Point:
    """The ``dead_letter`` point of one letter: tagged with the rule its reason ends with,
    at ``at_us`` (microseconds: distinct letters of one device and rule do not overwrite each
    other; the same letter twice lands on itself). ``source`` is the topic it came from.

    >>> dead_letter_point("seq: too small [greater_than_equal]", "pump-0001", "t", 7)._tags
    {'device_id': 'pump-0001', 'rule': 'greater_than_equal'}
    """
    rule = _RULE.search(reason)
    point = Point(DeadLetter.NAME)
    point.tag(DEVICE_ID, device_id or "unknown")
    point.tag(DeadLetter.RULE, rule.group(1) if rule else "unknown")
    point.field(DeadLetter.COUNT, 1)
    point.field(DeadLetter.REASON, reason)
    point.field(DeadLetter.MQTT_TOPIC, source)
    point.time(at_us, WritePrecision.US)
    return point


def _dead_letter(letter: records.DeadLetter) -> list[Point]:
    """One point per dead letter, at its receive time."""
    at_us = int(letter.received_at.timestamp() * 1_000_000)
    return [dead_letter_point(letter.reason, letter.device_id, letter.mqtt_topic, at_us)]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _audit(record: records.AuditRecord) -> list[Point]:
    """One point per change, at its time in microseconds (two changes of one device in one
    millisecond stay apart; the same record written twice lands on itself).

    >>> record = records.AuditRecord.model_validate({
    ...     "audit_id": "a1b2c3d4", "at": "2026-01-01T00:00:00.000001Z", "actor": "alice",
    ...     "role": "operator", "action": "set_desired", "device_id": "pump-0001",
    ...     "old": {}, "new": {"rate": 80.0}, "command_id": "c1d2e3f4"})
    >>> point = _audit(record)[0]
    >>> point._tags["actor"], point._fields["new"], point._time
    ('alice', '{"rate":80.0}', 1767225600000001)
    """
    point = Point(Audit.NAME)
    point.tag(DEVICE_ID, record.device_id)
    point.tag(DEVICE_TYPE, record.device_type or "unknown")
    point.tag(Audit.ACTION, record.action)
    point.tag(Audit.ACTOR, record.actor)
    point.field(Audit.ROLE, record.role)
    point.field(Audit.AUDIT_ID, record.audit_id)
    if record.command_id is not None:
        point.field(Audit.COMMAND_ID, record.command_id)
    if record.subject is not None:
        point.field(Audit.SUBJECT, record.subject)
    point.field(Audit.OLD, orjson.dumps(record.old, option=orjson.OPT_SORT_KEYS).decode())
    point.field(Audit.NEW, orjson.dumps(record.new, option=orjson.OPT_SORT_KEYS).decode())
    point.time((record.at - _EPOCH) // timedelta(microseconds=1), WritePrecision.US)
    return [point]


E = TypeVar("E")
#: Writes the points of one record, from its bytes.
_Write = Callable[[bytes], list[Point]]


def _writer(decode: Callable[[bytes], E], build: Callable[[E], list[Point]]) -> _Write:
    """Decode a record into its model, once, then build its points from the model."""

    def write(value: bytes) -> list[Point]:
        return build(decode(value))

    return write


_WRITERS: dict[str, _Write] = {
    Telemetry.NAME: _writer(messages.decode_telemetry, _telemetry),
    Anomaly.NAME: _writer(_decode_scores, _anomaly),
    Prediction.NAME: _writer(events.Prediction.model_validate_json, _prediction),
    Alert.NAME: _writer(events.Alert.model_validate_json, _alert),
    Twin.NAME: _writer(records.TwinView.model_validate_json, _twin),
    DeadLetter.NAME: _writer(records.DeadLetter.model_validate_json, _dead_letter),
    Audit.NAME: _writer(records.AuditRecord.model_validate_json, _audit),
}
#: The points of one record of each kind of Kafka topic (its measurement: ``MEASUREMENT_OF_KIND``),
#: from the record's bytes: each kind is decoded with its model (``twin_stream.domain.events``;
#: telemetry with the bridge's schema, ``messages.decode_telemetry``).
MEASUREMENTS: dict[str, _Write] = {
    kind: _WRITERS[measurement] for kind, measurement in MEASUREMENT_OF_KIND.items()
}


def _describe(error: Exception) -> str:
    """What was wrong with a record, on one line: a schema's first error names its field (if
    it is about one) and pydantic's rule (in parentheses: the dead letter's rule is
    ``unwritable``)."""
    if isinstance(error, ValidationError) and error.error_count():
        first = error.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        field = f"{loc}: " if loc else ""  # none: the record as a whole (not JSON, no object)
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        message = f"{field}{first['msg']} ({first['type']}){more}"
    else:
        message = repr(error)
    return " ".join(message.split())


def to_points(kind: str, value: bytes) -> list[Point]:
    """The points of one record of topic kind ``kind``, decoded once into its model;
    :class:`PayloadRejected` if it is not one (whatever went wrong: the builders are pure, so
    it is this record's fault).

    >>> letter = b'{"mqtt_topic": "t", "device_id": null, "reason": "r", "payload_base64": ""}'
    >>> try:
    ...     to_points("dlq", letter)
    ... except PayloadRejected as rejected:
    ...     print(rejected.reason)
    (record): no points from a dlq record: received_at: Field required (missing) [unwritable]
    """
    try:
        return MEASUREMENTS[kind](value)
    except Exception as e:
        raise PayloadRejected(
            f"(record): no points from a {kind} record: {_describe(e)} [unwritable]",
            field="(record)",
        ) from e
