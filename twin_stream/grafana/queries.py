"""Every InfluxQL query the dashboards and alert rules run, with the columns each must return.

InfluxQL, because InfluxDB 1.8, 2.x (through a DBRP mapping) and 3.x all serve it. The
measurements, tags and fields are the sink's, named once in :mod:`twin_stream.sink.measurements`.
Grafana fills in ``$timeFilter``, ``$__interval`` and ``$device_id`` before a query is sent;
:func:`render` does the same, so that the tests can run each query on a real InfluxQL engine.

>>> print(render(DEVICE_SCORE.influxql, since="1h", device_id="pump-0001").split("WHERE ")[1])
"device_id" = 'pump-0001' AND time > now() - 1h GROUP BY time(1m) fill(none)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.sink.measurements import (
    DEVICE_ID,
    DEVICE_TYPE,
    Alert,
    AlertPage,
    Anomaly,
    CommandStatus,
    DeadLetter,
    Prediction,
    Telemetry,
    Twin,
)

__all__ = ["ALL_QUERIES", "Query", "render"]


@dataclass(frozen=True)
class Query:
    """One InfluxQL query and what its panel or rule expects back.

    ``columns`` are patterns (regular expressions, full match) that must each match a value
    column of the result; ``tags`` are the GROUP BY tags each series must carry.
    """

    name: str
    influxql: str
    columns: tuple[str, ...]
    tags: tuple[str, ...] = ()
    format: Literal["time_series", "table"] = "time_series"

    def expects(self, columns: list[str]) -> list[str]:
        """The expected column patterns that none of ``columns`` matches."""
        return [p for p in self.columns if not any(re.fullmatch(p, c) for c in columns)]


_SIGNALS: Final = "|".join(sorted({m for specs in METRICS_BY_TYPE.values() for m in specs}))
_DEVICE: Final = f"\"{DEVICE_ID}\" = '$device_id'"
_QUALITY: Final = ("duplicates", "reordered", "stale", "invalid", "gaps", "dropouts")
_ID, _TYPE = f'"{DEVICE_ID}"', f'"{DEVICE_TYPE}"'  # quoted, as GROUP BY names them
_A, _P, _T = Alert, Prediction, Twin

# -- fleet overview ----------------------------------------------------------------------------

ONLINE_BY_TYPE = Query(
    "online_by_type",
    f'SELECT sum("online") AS "online", count("online") - sum("online") AS "offline" '
    f'FROM (SELECT last("{_T.ONLINE}") AS "online" FROM "{_T.NAME}" WHERE $timeFilter '
    f"GROUP BY {_ID}, {_TYPE}) GROUP BY {_TYPE}",
    ("online", "offline"),
    (DEVICE_TYPE,),
    "table",
)
# Open alerts: the last "open" of each alert (tag "alert", its id) in each severity. An alert
# whose severity changed has open=0 written in its other severities' series by the sink, so it
# is counted once, at its current severity (an updated alert stays open: open=1).
OPEN_ALERTS_BY_SEVERITY = Query(
    "open_alerts_by_severity",
    f'SELECT sum("open") AS "open" FROM (SELECT last("{_A.OPEN}") AS "open" FROM "{_A.NAME}" '
    f'WHERE $timeFilter GROUP BY {_ID}, "{_A.KIND}", "{_A.SEVERITY}", "{_A.ALERT}") '
    f'GROUP BY "{_A.SEVERITY}"',
    ("open",),
    (_A.SEVERITY,),
    "table",
)
ANOMALY_NOW = Query(
    "anomaly_now",
    f'SELECT last("{Anomaly.SCORE}") AS "score" FROM "{Anomaly.NAME}" WHERE $timeFilter '
    f"GROUP BY {_ID}, {_TYPE}",
    ("score",),
    (DEVICE_ID, DEVICE_TYPE),
    "table",
)
PREDICTED_FAILURES = Query(
    "predicted_failures",
    'SELECT "ttf_h", "lower_h", "upper_h", "trend_per_h" FROM ('
    f'SELECT last("{_P.TIME_TO_FAILURE_H}") AS "ttf_h", last("{_P.LOWER_H}") AS "lower_h", '
    f'last("{_P.UPPER_H}") AS "upper_h", last("{_P.TREND_PER_H}") AS "trend_per_h" '
    f'FROM "{_P.NAME}" WHERE $timeFilter GROUP BY {_ID}, {_TYPE}, "{_P.METRIC}") '
    f'WHERE "ttf_h" <= 24 GROUP BY {_ID}, {_TYPE}, "{_P.METRIC}"',
    ("ttf_h", "lower_h", "upper_h", "trend_per_h"),
    (DEVICE_ID, DEVICE_TYPE, _P.METRIC),
    "table",
)
DATA_QUALITY = Query(
    "data_quality",
    "SELECT "
    + ", ".join(f'sum("{q}") AS "{q}"' for q in _QUALITY)
    + " FROM (SELECT "
    + ", ".join(f'last("{_T.QUALITY_PREFIX}{q}") AS "{q}"' for q in _QUALITY)
    + f' FROM "{_T.NAME}" WHERE $timeFilter GROUP BY {_ID})',
    _QUALITY,
    (),
    "table",
)
DEAD_LETTER_RATE = Query(
    "dead_letter_rate",
    f'SELECT count("{DeadLetter.COUNT}") AS "dead_letters" FROM "{DeadLetter.NAME}" '
    f'WHERE $timeFilter GROUP BY time($__interval), "{DeadLetter.RULE}" fill(0)',
    ("dead_letters",),
    (DeadLetter.RULE,),
)

# -- device detail -----------------------------------------------------------------------------

DEVICE_SIGNALS = Query(
    "device_signals",
    f'SELECT mean(/^({_SIGNALS})$/) FROM "{Telemetry.NAME}" WHERE {_DEVICE} AND $timeFilter '
    "GROUP BY time($__interval) fill(none)",
    ("mean_.+",),
)
DEVICE_SCORE = Query(
    "device_score",
    f'SELECT max("{Anomaly.SCORE}") AS "score" FROM "{Anomaly.NAME}" '
    f"WHERE {_DEVICE} AND $timeFilter GROUP BY time($__interval) fill(none)",
    ("score",),
)
DEVICE_DEVIATIONS = Query(
    "device_deviations",
    f'SELECT max(/^{Anomaly.DEVIATION_PREFIX}/) FROM "{Anomaly.NAME}" '
    f"WHERE {_DEVICE} AND $timeFilter GROUP BY time($__interval) fill(none)",
    (f"max_{Anomaly.DEVIATION_PREFIX}.+",),
)
DEVICE_HEALTH = Query(
    "device_health",
    f'SELECT max("{Anomaly.HEALTH}") AS "health", max("{Anomaly.HEALTH_STAGE}") AS "stage" '
    f'FROM "{Anomaly.NAME}" WHERE {_DEVICE} AND $timeFilter GROUP BY time($__interval) '
    "fill(none)",
    ("health", "stage"),
)
DEVICE_TIME_TO_FAILURE = Query(
    "device_time_to_failure",
    f'SELECT last("{_P.TIME_TO_FAILURE_H}") AS "ttf_h", last("{_P.LOWER_H}") AS "lower_h", '
    f'last("{_P.UPPER_H}") AS "upper_h" FROM "{_P.NAME}" WHERE {_DEVICE} AND $timeFilter '
    f'GROUP BY time($__interval), "{_P.METRIC}" fill(none)',
    ("ttf_h", "lower_h", "upper_h"),
    (_P.METRIC,),
)
_SETTINGS: Final = "|".join(p.removesuffix("_") for p in (_T.REPORTED_PREFIX, _T.DESIRED_PREFIX))
DEVICE_SETTINGS = Query(
    "device_settings",
    f'SELECT last(/^({_SETTINGS})_/) FROM "{_T.NAME}" WHERE {_DEVICE} AND $timeFilter '
    "GROUP BY time($__interval) fill(previous)",
    (f"last_{_T.REPORTED_PREFIX}.+", f"last_{_T.DESIRED_PREFIX}.+"),
)
DEVICE_STATE = Query(
    "device_state",
    f'SELECT last("{_T.ONLINE}") AS "online", last("{_T.DELTA_SIZE}") AS "delta_size", '
    f'last("{_T.VERSION}") AS "version" FROM "{_T.NAME}" WHERE {_DEVICE} AND $timeFilter',
    ("online", "delta_size", "version"),
    (),
    "table",
)
_C = CommandStatus
# Each command's latest status (its series: tag "command"), with the reason it was rejected or
# expired, the twin version of its document and the settings it changed.
DEVICE_COMMANDS = Query(
    "device_commands",
    f'SELECT last("{_C.STATUS}") AS "status", last("{_C.REASON}") AS "reason", '
    f'last("{_C.KIND}") AS "kind", last("{_C.CHANGES}") AS "changes", '
    f'last("{_C.TWIN_VERSION}") AS "twin_version" FROM "{_C.NAME}" '
    f'WHERE {_DEVICE} AND $timeFilter GROUP BY "{_C.COMMAND}"',
    ("status", "reason", "kind", "changes", "twin_version"),
    (_C.COMMAND,),
    "table",
)
DEVICE_ALERT_MARKS = Query(
    "device_alert_marks",
    f'SELECT "{_A.SUMMARY}", "{_A.KIND}", "{_A.SEVERITY}", "{_A.STATE}" FROM "{_A.NAME}" '
    f"WHERE {_DEVICE} AND $timeFilter",
    (_A.SUMMARY, _A.KIND, _A.SEVERITY, _A.STATE),
    (),
    "table",
)
DEVICE_IDS = Query(
    "device_ids",
    f'SHOW TAG VALUES FROM "{Telemetry.NAME}" WITH KEY = {_ID}',
    ("key", "value"),
    (),
    "table",
)

# -- alerts ------------------------------------------------------------------------------------

ALERT_HISTORY = Query(
    "alert_history",
    f'SELECT "{_A.STATE}", "{_A.SUMMARY}", "{_A.DURATION_S}", "{_A.ALERT_ID}" FROM "{_A.NAME}" '
    f'WHERE $timeFilter GROUP BY {_ID}, {_TYPE}, "{_A.KIND}", "{_A.SEVERITY}"',
    (_A.STATE, _A.SUMMARY, _A.DURATION_S, _A.ALERT_ID),
    (DEVICE_ID, DEVICE_TYPE, _A.KIND, _A.SEVERITY),
    "table",
)
ALERTS_RAISED = Query(
    "alerts_raised",
    f'SELECT count("{_A.ALERT_ID}") AS "raised" FROM "{_A.NAME}" WHERE "{_A.STATE}" = \'open\' '
    f'AND $timeFilter GROUP BY time($__interval), "{_A.SEVERITY}" fill(0)',
    ("raised",),
    (_A.SEVERITY,),
)
OPEN_ALERTS = Query(
    "open_alerts",
    f'SELECT "open", "summary" FROM (SELECT last("{_A.OPEN}") AS "open", '
    f'last("{_A.SUMMARY}") AS "summary" FROM "{_A.NAME}" WHERE $timeFilter '
    f'GROUP BY {_ID}, "{_A.KIND}", "{_A.SEVERITY}", "{_A.ALERT}") WHERE "open" = 1 '
    f'GROUP BY {_ID}, "{_A.KIND}", "{_A.SEVERITY}"',
    ("open", "summary"),
    (DEVICE_ID, _A.KIND, _A.SEVERITY),
    "table",
)

# -- alert rules ------------------------------------------------------------------------------
# One value per series over a fixed window, written out: Grafana expands $NAME in provisioning
# files from its environment, so rule queries carry no $timeFilter.

#: The window each alert rule looks back over, in seconds.
RULE_WINDOWS: Final = {"pages": 30 * 86400, "pipeline": 300, "dead_letters": 300}

_AP = AlertPage
#: The worker's own alerts, as they page: one series per paging event (tag "page": its
#: revision), tagged with what its notification says (severity, explanation, device, alert id).
RULE_ALERT_PAGES = Query(
    "rule_alert_pages",
    f'SELECT last("{_AP.REVISION}") AS "revision" FROM "{_AP.NAME}" '
    f"WHERE time > now() - {RULE_WINDOWS['pages']}s "
    f'GROUP BY {_ID}, {_TYPE}, "{_AP.KIND}", "{_AP.SEVERITY}", "{_AP.ALERT}", '
    f'"{_AP.SUMMARY}", "{_AP.EVENT}", "{_AP.PAGE}"',
    ("revision",),
    (DEVICE_ID, DEVICE_TYPE, _AP.KIND, _AP.SEVERITY, _AP.ALERT, _AP.SUMMARY, _AP.EVENT, _AP.PAGE),
)
#: Each alert's latest revision, whatever its event: an acknowledgement, a shelving, a
#: resolution or a newer page moves it past the page before (max: not the last in time).
RULE_ALERT_LATEST = Query(
    "rule_alert_latest",
    f'SELECT max("{_A.REVISION}") AS "revision" FROM "{_A.NAME}" '
    f"WHERE time > now() - {RULE_WINDOWS['pages']}s "
    f'GROUP BY "{_A.ALERT}"',
    ("revision",),
    (_A.ALERT,),
)
#: Scores stored fleet-wide over the window: none means the pipeline is down somewhere between
#: the devices and InfluxDB (broker, bridge, Kafka, worker, sink), which no worker can see.
RULE_PIPELINE = Query(
    "rule_pipeline",
    f'SELECT count("{Anomaly.SCORE}") AS "scores" FROM "{Anomaly.NAME}" '
    f"WHERE time > now() - {RULE_WINDOWS['pipeline']}s",
    ("scores",),
)
#: Dead letters of one device over the window: the growth of its twin's invalid counter (the
#: twin knows the device's type, which a refused payload does not carry).
RULE_DEAD_LETTERS = Query(
    "rule_dead_letters",
    f'SELECT spread("{_T.QUALITY_PREFIX}invalid") AS "dead_letters" FROM "{_T.NAME}" '
    f"WHERE time > now() - {RULE_WINDOWS['dead_letters']}s "
    f"GROUP BY {_ID}, {_TYPE}",
    ("dead_letters",),
    (DEVICE_ID, DEVICE_TYPE),
)

#: Every query, for the checks against a real InfluxQL engine.
ALL_QUERIES: Final[tuple[Query, ...]] = tuple(
    q for q in list(globals().values()) if isinstance(q, Query)
)


def render(influxql: str, *, since: str, interval: str = "1m", device_id: str = "") -> str:
    """Fill in what Grafana would: the time filter, the interval and the device variable."""
    return (
        influxql.replace("$timeFilter", f"time > now() - {since}")
        .replace("$__interval", interval)
        .replace("$device_id", device_id)
    )
