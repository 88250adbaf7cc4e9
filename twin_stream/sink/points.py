"""Kafka records -> InfluxDB points. Pure: one function per measurement.

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
from datetime import datetime

import orjson
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from twin_stream.errors import PayloadRejected
from twin_stream.sink.measurements import (
    DEVICE_ID,
    DEVICE_TYPE,
    MEASUREMENT_OF_KIND,
    Alert,
    Anomaly,
    DeadLetter,
    Prediction,
    Telemetry,
    Twin,
)

__all__ = ["MEASUREMENTS", "dead_letter_point", "to_points"]


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def _base(measurement: str, body: dict[str, object], ts: str) -> Point:
    return (
        Point(measurement)
        .tag(DEVICE_ID, body["device_id"])
        .tag(DEVICE_TYPE, body.get("device_type") or "unknown")
        .time(_ms(ts), WritePrecision.MS)
    )


def _telemetry(body: dict[str, object]) -> list[Point]:
    point = _base(Telemetry.NAME, body, str(body["ts"])).field(Telemetry.SEQ, int(body["seq"]))  # type: ignore[call-overload]
    for name, value in (body.get("metrics") or {}).items():  # type: ignore[attr-defined]
        if value is not None:
            point.field(name, float(value))
    return [point]


def _anomaly(body: dict[str, object]) -> list[Point]:
    point = (
        _base(Anomaly.NAME, body, str(body["ts"]))
        .field(Anomaly.SCORE, float(body["score"]))  # type: ignore[arg-type]
        .field(Anomaly.SEQ, int(body["seq_last"]))  # type: ignore[call-overload]
        .field(Anomaly.WARMING_UP, bool(body.get("warming_up")))
        .tag(Anomaly.DETECTOR_VERSION, body.get("detector_version") or "")
    )
    for name, deviation in (body.get("contributions") or {}).items():  # type: ignore[attr-defined]
        point.field(f"{Anomaly.DEVIATION_PREFIX}{name}", float(deviation))
    return [point]


def _prediction(body: dict[str, object]) -> list[Point]:
    point = (
        _base(Prediction.NAME, body, str(body["ts"]))
        .tag(Prediction.METRIC, body["metric"])
        .field(Prediction.VALUE, float(body["value"]))  # type: ignore[arg-type]
        .field(Prediction.LIMIT, float(body["limit"]))  # type: ignore[arg-type]
        .field(Prediction.TREND_PER_H, float(body["trend_per_h"]))  # type: ignore[arg-type]
    )
    for key in (Prediction.TIME_TO_FAILURE_H, Prediction.LOWER_H, Prediction.UPPER_H):
        if body.get(key) is not None:
            point.field(key, float(body[key]))  # type: ignore[arg-type]
    return [point]


def _alert(body: dict[str, object]) -> list[Point]:
    """One point per alert event, in the series of its alert (tag ``alert``) and severity; an
    alert is open until its ``resolved`` event (``updated`` keeps it open).

    Severity is a tag, so an alert whose severity changes moves to another series: every event
    also writes ``open=0`` (and nothing else) into the alert's series of the other severities,
    so that "last open per alert and severity" never shows a severity the alert has left.

    >>> body = {"device_id": "pump-0001", "device_type": "infusion_pump", "kind": "anomaly",
    ...         "severity": "critical", "state": "updated", "alert_id": "a1", "revision": 1,
    ...         "summary": "anomaly", "ts": "2026-01-01T00:00:00Z",
    ...         "opened_at": "2026-01-01T00:00:00Z"}
    >>> [(p._tags["severity"], p._fields["open"]) for p in _alert(body)]
    [('critical', 1), ('info', 0), ('warning', 0)]
    """
    state, severity = str(body["state"]), str(body["severity"])
    point = (
        _base(Alert.NAME, body, str(body["ts"]))
        .tag(Alert.KIND, body["kind"])
        .tag(Alert.SEVERITY, severity)
        .tag(Alert.ALERT, str(body["alert_id"]))
        .field(Alert.STATE, state)
        .field(Alert.OPEN, 0 if state == "resolved" else 1)
        .field(Alert.ALERT_ID, str(body["alert_id"]))
        .field(Alert.SUMMARY, str(body["summary"]))
        .field(Alert.REVISION, int(body.get("revision") or 0))  # type: ignore[call-overload]
    )
    if body.get("resolved_at"):
        duration = (_ms(str(body["resolved_at"])) - _ms(str(body["opened_at"]))) / 1000
        point.field(Alert.DURATION_S, duration)
    others = [
        _base(Alert.NAME, body, str(body["ts"]))
        .tag(Alert.KIND, body["kind"])
        .tag(Alert.SEVERITY, other)
        .tag(Alert.ALERT, str(body["alert_id"]))
        .field(Alert.OPEN, 0)
        for other in Alert.SEVERITIES
        if other != severity
    ]
    return [point, *others]


def _twin(body: dict[str, object]) -> list[Point]:
    quality: dict[str, int] = body.get("quality") or {}  # type: ignore[assignment]
    point = (
        _base(Twin.NAME, body, str(body["changed_at"]))
        .tag(Twin.CONNECTIVITY, body["connectivity"])
        .field(Twin.VERSION, int(body["version"]))  # type: ignore[call-overload]
        .field(Twin.ONLINE, 1 if body["connectivity"] == "online" else 0)
        .field(Twin.DELTA_SIZE, len(body.get("delta") or {}))  # type: ignore[arg-type]
        .field(Twin.HEALTH, str(body.get("health")))
    )
    for key, value in quality.items():
        point.field(f"{Twin.QUALITY_PREFIX}{key}", int(value))
    # Numeric settings side by side, for "reported vs desired" (strings stay in the twin API).
    for side, prefix in (("reported", Twin.REPORTED_PREFIX), ("desired", Twin.DESIRED_PREFIX)):
        settings: dict[str, object] = body.get(side) or {}  # type: ignore[assignment]
        for key, setting in settings.items():
            if isinstance(setting, int | float) and not isinstance(setting, bool):
                point.field(f"{prefix}{key}", float(setting))
    return [point]


_RULE = re.compile(r"\[([a-z_]+)\]$")


def dead_letter_point(reason: str, device_id: str | None, source: str, at_us: int) -> Point:
    """The ``dead_letter`` point of one letter: tagged with the rule its reason ends with,
    at ``at_us`` (microseconds: distinct letters of one device and rule do not overwrite each
    other; the same letter twice lands on itself). ``source`` is the topic it came from.

    >>> dead_letter_point("seq: too small [greater_than_equal]", "pump-0001", "t", 7)._tags
    {'device_id': 'pump-0001', 'rule': 'greater_than_equal'}
    """
    rule = _RULE.search(reason)
    return (
        Point(DeadLetter.NAME)
        .tag(DEVICE_ID, device_id or "unknown")
        .tag(DeadLetter.RULE, rule.group(1) if rule else "unknown")
        .field(DeadLetter.COUNT, 1)
        .field(DeadLetter.REASON, reason)
        .field(DeadLetter.MQTT_TOPIC, source)
        .time(at_us, WritePrecision.US)
    )


def _dead_letter(body: dict[str, object]) -> list[Point]:
    """One point per dead letter, at its receive time."""
    received = datetime.fromisoformat(str(body["received_at"]).replace("Z", "+00:00"))
    device_id = body.get("device_id")
    return [
        dead_letter_point(
            str(body["reason"]),
            str(device_id) if device_id else None,
            str(body.get("mqtt_topic")),
            int(received.timestamp() * 1_000_000),
        )
    ]


_WRITERS: dict[str, Callable[[dict[str, object]], list[Point]]] = {
    Telemetry.NAME: _telemetry,
    Anomaly.NAME: _anomaly,
    Prediction.NAME: _prediction,
    Alert.NAME: _alert,
    Twin.NAME: _twin,
    DeadLetter.NAME: _dead_letter,
}
#: The points written for each kind of Kafka topic (its measurement: ``MEASUREMENT_OF_KIND``).
MEASUREMENTS: dict[str, Callable[[dict[str, object]], list[Point]]] = {
    kind: _WRITERS[measurement] for kind, measurement in MEASUREMENT_OF_KIND.items()
}


def to_points(kind: str, value: bytes) -> list[Point]:
    """The points of one record of topic kind ``kind``; :class:`PayloadRejected` if it is not
    one (whatever went wrong: the builders are pure, so it is this record's fault).

    >>> try:
    ...     to_points("telemetry", b'{"device_id": "pump-0001"}')
    ... except PayloadRejected as rejected:
    ...     print(rejected.reason)
    (record): no points from a telemetry record: KeyError('ts') [unwritable]
    """
    try:
        body = orjson.loads(value)
        return MEASUREMENTS[kind](body)
    except Exception as e:
        message = " ".join(repr(e).split())
        raise PayloadRejected(
            f"(record): no points from a {kind} record: {message} [unwritable]", field="(record)"
        ) from e
