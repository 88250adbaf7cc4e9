"""The one list of InfluxDB names: every measurement the sink writes, with its tags and fields.

The sink writes them (:mod:`twin_stream.sink.points`), the dashboards and alert rules read them
(:mod:`twin_stream.grafana.queries`): a name changed here changes both.

>>> MEASUREMENT_OF_KIND["scores"], Anomaly.NAME, Anomaly.DEVIATION_PREFIX + "motor_current"
('anomaly', 'anomaly', 'z_motor_current')
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEVICE_ID",
    "DEVICE_TYPE",
    "MEASUREMENT_OF_KIND",
    "Alert",
    "AlertPage",
    "Anomaly",
    "Audit",
    "CommandStatus",
    "DeadLetter",
    "Prediction",
    "Telemetry",
    "Twin",
]

#: Tags of every measurement but ``dead_letter`` (which has no device type).
DEVICE_ID: Final = "device_id"
DEVICE_TYPE: Final = "device_type"


class Telemetry:
    """Every reading (topic ``telemetry``): one field per signal, named after it."""

    NAME: Final = "telemetry"
    SEQ: Final = "seq"


class Anomaly:
    """The detector's score of each reading (topic ``scores``)."""

    NAME: Final = "anomaly"
    DETECTOR_VERSION: Final = "detector_version"  # tag
    SCORE: Final = "score"
    SEQ: Final = "seq"
    WARMING_UP: Final = "warming_up"
    #: The health index (distance from the device's frozen healthy reference) and its stage
    #: (0 normal, 1 degrading, 2 critical); absent while the reference is learned.
    HEALTH: Final = "health"
    HEALTH_STAGE: Final = "health_stage"
    #: One field per signal: its deviation, ``z_<signal>``.
    DEVIATION_PREFIX: Final = "z_"


class Prediction:
    """A degrading signal's trend towards its failure limit (topic ``predictions``)."""

    NAME: Final = "prediction"
    METRIC: Final = "metric"  # tag: the signal
    VALUE: Final = "value"
    LIMIT: Final = "limit"
    TREND_PER_H: Final = "trend_per_h"
    TIME_TO_FAILURE_H: Final = "time_to_failure_h"
    LOWER_H: Final = "lower_h"
    UPPER_H: Final = "upper_h"


class Alert:
    """Every alert event (topic ``alerts``), in the series of its alert and severity."""

    NAME: Final = "alert"
    KIND: Final = "kind"  # tag
    SEVERITY: Final = "severity"  # tag
    ALERT: Final = "alert"  # tag: the alert's id
    STATE: Final = "state"
    OPEN: Final = "open"  # 1 while open, 0 once resolved (and in its other severities' series)
    ALERT_ID: Final = "alert_id"
    SUMMARY: Final = "summary"
    REVISION: Final = "revision"
    DURATION_S: Final = "duration_s"
    #: 1 if the event notifies a person (``Alert.pages``: not acknowledged, not shelved...).
    PAGES: Final = "pages"
    ACK_BY: Final = "ack_by"  # who acknowledged it (while acknowledged)
    SHELVED_BY: Final = "shelved_by"  # who shelved it (while shelved)...
    SHELVED_UNTIL: Final = "shelved_until"  # ...until when (ISO 8601)
    RENOTIFIED: Final = "renotified"  # how many times it was re-notified
    SEVERITIES: Final = ("info", "warning", "critical")


class AlertPage:
    """Every alert event that pages a person (topic ``alerts``, ``Alert.pages``): one series
    per page (tag ``page``: the event's revision), tagged with what its notification says, so
    that Grafana's notification rule (:mod:`twin_stream.grafana.alert_rules`) carries the
    worker's own alert: its severity, its explanation and its device."""

    NAME: Final = "alert_page"
    KIND: Final = "kind"  # tag
    SEVERITY: Final = "severity"  # tag
    ALERT: Final = "alert"  # tag: the alert's id
    SUMMARY: Final = "summary"  # tag: the worker's explanation, at most SUMMARY_MAX characters
    EVENT: Final = "event"  # tag: the event that paged (open, updated, unshelved, renotified)
    PAGE: Final = "page"  # tag: the paging event's revision (each page is its own series)
    REVISION: Final = "revision"  # the same revision, as a number
    SUMMARY_MAX: Final = 200


class Twin:
    """Every published twin (topic ``twins``): connectivity, health, quality, settings."""

    NAME: Final = "twin"
    CONNECTIVITY: Final = "connectivity"  # tag
    VERSION: Final = "version"
    ONLINE: Final = "online"
    DELTA_SIZE: Final = "delta_size"
    HEALTH: Final = "health"
    #: One field per data-quality counter, ``quality_<counter>``.
    QUALITY_PREFIX: Final = "quality_"
    #: One field per numeric setting, ``reported_<setting>`` and ``desired_<setting>``.
    REPORTED_PREFIX: Final = "reported_"
    DESIRED_PREFIX: Final = "desired_"


class CommandStatus:
    """Each command a twin remembers (topic ``twins``, its ``commands``): one point per command
    and status, at the time the status was reached, so a command's history is its series."""

    NAME: Final = "command_status"
    COMMAND: Final = "command"  # tag: the command's id
    STATUS: Final = "status"  # pending, delivered, applied, rejected, expired
    KIND: Final = "kind"
    REASON: Final = "reason"  # why it was rejected (the device's words) or expired
    TWIN_VERSION: Final = "twin_version"  # of the desired document that carries it
    #: The settings it changed (a JSON object, sorted keys).
    CHANGES: Final = "changes"


class DeadLetter:
    """Every dead letter (topic ``dlq``), tagged with the rule its reason names."""

    NAME: Final = "dead_letter"
    RULE: Final = "rule"  # tag
    COUNT: Final = "count"
    REASON: Final = "reason"
    MQTT_TOPIC: Final = "mqtt_topic"


class Audit:
    """Every change made through the twin API (topic ``audit``): who, when, what it was and
    what it became, at the change's own time (microseconds)."""

    NAME: Final = "audit"
    ACTION: Final = "action"  # tag: set_desired, alert_ack, ...
    ACTOR: Final = "actor"  # tag: the API token's name
    ROLE: Final = "role"
    AUDIT_ID: Final = "audit_id"
    COMMAND_ID: Final = "command_id"
    SUBJECT: Final = "subject"
    #: The state before and after the change, each as a JSON object (sorted keys).
    OLD: Final = "old"
    NEW: Final = "new"


#: The measurement each kind of Kafka topic is written to.
MEASUREMENT_OF_KIND: Final[dict[str, str]] = {
    "telemetry": Telemetry.NAME,
    "scores": Anomaly.NAME,
    "predictions": Prediction.NAME,
    "alerts": Alert.NAME,
    "twins": Twin.NAME,
    "dlq": DeadLetter.NAME,
    "audit": Audit.NAME,
}
