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

__all__ = ["MEASUREMENTS", "to_points"]


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def _base(measurement: str, body: dict[str, object], ts: str) -> Point:
    return (
        Point(measurement)
        .tag("device_id", body["device_id"])
        .tag("device_type", body.get("device_type") or "unknown")
        .time(_ms(ts), WritePrecision.MS)
    )


def _telemetry(body: dict[str, object]) -> list[Point]:
    point = _base("telemetry", body, str(body["ts"])).field("seq", int(body["seq"]))  # type: ignore[call-overload]
    for name, value in (body.get("metrics") or {}).items():  # type: ignore[attr-defined]
        if value is not None:
            point.field(name, float(value))
    return [point]


def _anomaly(body: dict[str, object]) -> list[Point]:
    point = (
        _base("anomaly", body, str(body["ts"]))
        .field("score", float(body["score"]))  # type: ignore[arg-type]
        .field("seq", int(body["seq_last"]))  # type: ignore[call-overload]
        .field("warming_up", bool(body.get("warming_up")))
        .tag("detector_version", body.get("detector_version") or "")
    )
    for name, deviation in (body.get("contributions") or {}).items():  # type: ignore[attr-defined]
        point.field(f"z_{name}", float(deviation))
    return [point]


def _prediction(body: dict[str, object]) -> list[Point]:
    point = (
        _base("prediction", body, str(body["ts"]))
        .tag("metric", body["metric"])
        .field("value", float(body["value"]))  # type: ignore[arg-type]
        .field("limit", float(body["limit"]))  # type: ignore[arg-type]
        .field("trend_per_h", float(body["trend_per_h"]))  # type: ignore[arg-type]
    )
    for key in ("time_to_failure_h", "lower_h", "upper_h"):
        if body.get(key) is not None:
            point.field(key, float(body[key]))  # type: ignore[arg-type]
    return [point]


_SEVERITIES = ("info", "warning", "critical")


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
        _base("alert", body, str(body["ts"]))
        .tag("kind", body["kind"])
        .tag("severity", severity)
        .tag("alert", str(body["alert_id"]))
        .field("state", state)
        .field("open", 0 if state == "resolved" else 1)
        .field("alert_id", str(body["alert_id"]))
        .field("summary", str(body["summary"]))
        .field("revision", int(body.get("revision") or 0))  # type: ignore[call-overload]
    )
    if body.get("resolved_at"):
        duration = (_ms(str(body["resolved_at"])) - _ms(str(body["opened_at"]))) / 1000
        point.field("duration_s", duration)
    others = [
        _base("alert", body, str(body["ts"]))
        .tag("kind", body["kind"])
        .tag("severity", other)
        .tag("alert", str(body["alert_id"]))
        .field("open", 0)
        for other in _SEVERITIES
        if other != severity
    ]
    return [point, *others]


def _twin(body: dict[str, object]) -> list[Point]:
    quality: dict[str, int] = body.get("quality") or {}  # type: ignore[assignment]
    point = (
        _base("twin", body, str(body["changed_at"]))
        .tag("connectivity", body["connectivity"])
        .field("version", int(body["version"]))  # type: ignore[call-overload]
        .field("online", 1 if body["connectivity"] == "online" else 0)
        .field("delta_size", len(body.get("delta") or {}))  # type: ignore[arg-type]
        .field("health", str(body.get("health")))
    )
    for key, value in quality.items():
        point.field(f"quality_{key}", int(value))
    # Numeric settings side by side, for "reported vs desired" (strings stay in the twin API).
    for side in ("reported", "desired"):
        settings: dict[str, object] = body.get(side) or {}  # type: ignore[assignment]
        for key, setting in settings.items():
            if isinstance(setting, int | float) and not isinstance(setting, bool):
                point.field(f"{side}_{key}", float(setting))
    return [point]


_RULE = re.compile(r"\[([a-z_]+)\]$")


def _dead_letter(body: dict[str, object]) -> list[Point]:
    """One point per dead letter, at its receive time in microseconds (distinct letters of
    one device and rule do not overwrite each other; the same letter twice lands on itself)."""
    reason = str(body["reason"])
    rule = _RULE.search(reason)
    received = datetime.fromisoformat(str(body["received_at"]).replace("Z", "+00:00"))
    return [
        Point("dead_letter")
        .tag("device_id", body.get("device_id") or "unknown")
        .tag("rule", rule.group(1) if rule else "unknown")
        .field("count", 1)
        .field("reason", reason)
        .field("mqtt_topic", str(body.get("mqtt_topic")))
        .time(int(received.timestamp() * 1_000_000), WritePrecision.US)
    ]


#: The measurement written for each kind of Kafka topic.
MEASUREMENTS: dict[str, Callable[[dict[str, object]], list[Point]]] = {
    "telemetry": _telemetry,
    "scores": _anomaly,
    "predictions": _prediction,
    "alerts": _alert,
    "twins": _twin,
    "dlq": _dead_letter,
}


def to_points(kind: str, value: bytes) -> list[Point]:
    """The points of one record of topic kind ``kind`` (ValueError if it is not one)."""
    try:
        body = orjson.loads(value)
        return MEASUREMENTS[kind](body)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"cannot make points from a {kind} record: {e!r}") from e
