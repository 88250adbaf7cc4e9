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
    "Anomaly",
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
    SEVERITIES: Final = ("info", "warning", "critical")


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


class DeadLetter:
    """Every dead letter (topic ``dlq``), tagged with the rule its reason names."""

    NAME: Final = "dead_letter"
    RULE: Final = "rule"  # tag
    COUNT: Final = "count"
    REASON: Final = "reason"
    MQTT_TOPIC: Final = "mqtt_topic"


#: The measurement each kind of Kafka topic is written to.
MEASUREMENT_OF_KIND: Final[dict[str, str]] = {
    "telemetry": Telemetry.NAME,
    "scores": Anomaly.NAME,
    "predictions": Prediction.NAME,
    "alerts": Alert.NAME,
    "twins": Twin.NAME,
    "dlq": DeadLetter.NAME,
}
