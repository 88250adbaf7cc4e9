"""Every InfluxQL query the dashboards and alert rules run, with the columns each must return.

InfluxQL, because InfluxDB 1.8, 2.x (through a DBRP mapping) and 3.x all serve it. The
measurements are the ones the sink writes (:mod:`twin_stream.sink.points`). Grafana fills in
``$timeFilter``, ``$__interval`` and ``$device_id`` before a query is sent; :func:`render` does the
same, so that the tests can run each query on a real InfluxQL engine.

>>> print(render(DEVICE_SCORE.influxql, since="1h", device_id="pump-0001").split("WHERE ")[1])
"device_id" = 'pump-0001' AND time > now() - 1h GROUP BY time(1m) fill(none)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from twin_stream.domain.devices import METRICS_BY_TYPE

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
_DEVICE: Final = "\"device_id\" = '$device_id'"
_QUALITY: Final = ("duplicates", "reordered", "stale", "invalid", "gaps", "dropouts")

# -- fleet overview ----------------------------------------------------------------------------

ONLINE_BY_TYPE = Query(
    "online_by_type",
    'SELECT sum("online") AS "online", count("online") - sum("online") AS "offline" '
    'FROM (SELECT last("online") AS "online" FROM "twin" WHERE $timeFilter '
    'GROUP BY "device_id", "device_type") GROUP BY "device_type"',
    ("online", "offline"),
    ("device_type",),
    "table",
)
# Open alerts: the last "open" of each alert (tag "alert", its id) in each severity. An alert
# whose severity changed has open=0 written in its other severities' series by the sink, so it
# is counted once, at its current severity (an updated alert stays open: open=1).
OPEN_ALERTS_BY_SEVERITY = Query(
    "open_alerts_by_severity",
    'SELECT sum("open") AS "open" FROM (SELECT last("open") AS "open" FROM "alert" '
    'WHERE $timeFilter GROUP BY "device_id", "kind", "severity", "alert") GROUP BY "severity"',
    ("open",),
    ("severity",),
    "table",
)
ANOMALY_NOW = Query(
    "anomaly_now",
    'SELECT last("score") AS "score" FROM "anomaly" WHERE $timeFilter '
    'GROUP BY "device_id", "device_type"',
    ("score",),
    ("device_id", "device_type"),
    "table",
)
PREDICTED_FAILURES = Query(
    "predicted_failures",
    'SELECT "ttf_h", "lower_h", "upper_h", "trend_per_h" FROM ('
    'SELECT last("time_to_failure_h") AS "ttf_h", last("lower_h") AS "lower_h", '
    'last("upper_h") AS "upper_h", last("trend_per_h") AS "trend_per_h" FROM "prediction" '
    'WHERE $timeFilter GROUP BY "device_id", "device_type", "metric") WHERE "ttf_h" <= 24 '
    'GROUP BY "device_id", "device_type", "metric"',
    ("ttf_h", "lower_h", "upper_h", "trend_per_h"),
    ("device_id", "device_type", "metric"),
    "table",
)
DATA_QUALITY = Query(
    "data_quality",
    "SELECT "
    + ", ".join(f'sum("{q}") AS "{q}"' for q in _QUALITY)
    + " FROM (SELECT "
    + ", ".join(f'last("quality_{q}") AS "{q}"' for q in _QUALITY)
    + ' FROM "twin" WHERE $timeFilter GROUP BY "device_id")',
    _QUALITY,
    (),
    "table",
)
DEAD_LETTER_RATE = Query(
    "dead_letter_rate",
    'SELECT count("count") AS "dead_letters" FROM "dead_letter" WHERE $timeFilter '
    'GROUP BY time($__interval), "rule" fill(0)',
    ("dead_letters",),
    ("rule",),
)

# -- device detail -----------------------------------------------------------------------------

DEVICE_SIGNALS = Query(
    "device_signals",
    f'SELECT mean(/^({_SIGNALS})$/) FROM "telemetry" WHERE {_DEVICE} AND $timeFilter '
    "GROUP BY time($__interval) fill(none)",
    ("mean_.+",),
)
DEVICE_SCORE = Query(
    "device_score",
    f'SELECT max("score") AS "score" FROM "anomaly" WHERE {_DEVICE} AND $timeFilter '
    "GROUP BY time($__interval) fill(none)",
    ("score",),
)
DEVICE_DEVIATIONS = Query(
    "device_deviations",
    f'SELECT max(/^z_/) FROM "anomaly" WHERE {_DEVICE} AND $timeFilter '
    "GROUP BY time($__interval) fill(none)",
    ("max_z_.+",),
)
DEVICE_TIME_TO_FAILURE = Query(
    "device_time_to_failure",
    'SELECT last("time_to_failure_h") AS "ttf_h", last("lower_h") AS "lower_h", '
    f'last("upper_h") AS "upper_h" FROM "prediction" WHERE {_DEVICE} AND $timeFilter '
    'GROUP BY time($__interval), "metric" fill(none)',
    ("ttf_h", "lower_h", "upper_h"),
    ("metric",),
)
DEVICE_SETTINGS = Query(
    "device_settings",
    f'SELECT last(/^(reported|desired)_/) FROM "twin" WHERE {_DEVICE} AND $timeFilter '
    "GROUP BY time($__interval) fill(previous)",
    ("last_reported_.+", "last_desired_.+"),
)
DEVICE_STATE = Query(
    "device_state",
    'SELECT last("online") AS "online", last("delta_size") AS "delta_size", '
    f'last("version") AS "version" FROM "twin" WHERE {_DEVICE} AND $timeFilter',
    ("online", "delta_size", "version"),
    (),
    "table",
)
DEVICE_ALERT_MARKS = Query(
    "device_alert_marks",
    f'SELECT "summary", "kind", "severity", "state" FROM "alert" WHERE {_DEVICE} AND $timeFilter',
    ("summary", "kind", "severity", "state"),
    (),
    "table",
)
DEVICE_IDS = Query(
    "device_ids",
    'SHOW TAG VALUES FROM "telemetry" WITH KEY = "device_id"',
    ("key", "value"),
    (),
    "table",
)

# -- alerts ------------------------------------------------------------------------------------

ALERT_HISTORY = Query(
    "alert_history",
    'SELECT "state", "summary", "duration_s", "alert_id" FROM "alert" WHERE $timeFilter '
    'GROUP BY "device_id", "device_type", "kind", "severity"',
    ("state", "summary", "duration_s", "alert_id"),
    ("device_id", "device_type", "kind", "severity"),
    "table",
)
ALERTS_RAISED = Query(
    "alerts_raised",
    'SELECT count("alert_id") AS "raised" FROM "alert" WHERE "state" = \'open\' '
    'AND $timeFilter GROUP BY time($__interval), "severity" fill(0)',
    ("raised",),
    ("severity",),
)
OPEN_ALERTS = Query(
    "open_alerts",
    'SELECT "open", "summary" FROM (SELECT last("open") AS "open", last("summary") AS '
    '"summary" FROM "alert" WHERE $timeFilter GROUP BY "device_id", "kind", "severity", '
    '"alert") WHERE "open" = 1 GROUP BY "device_id", "kind", "severity"',
    ("open", "summary"),
    ("device_id", "kind", "severity"),
    "table",
)

# -- alert rules ------------------------------------------------------------------------------
# One value per series over a fixed window, written out: Grafana expands $NAME in provisioning
# files from its environment, so rule queries carry no $timeFilter.

#: The window each alert rule looks back over, in seconds.
RULE_WINDOWS: Final = {"anomaly": 180, "prediction": 900, "offline": 86400, "dead_letters": 300}

RULE_ANOMALY = Query(
    "rule_anomaly",
    'SELECT min("score") AS "score" FROM "anomaly" WHERE "warming_up" = false '
    f"AND time > now() - {RULE_WINDOWS['anomaly']}s "
    'GROUP BY "device_id", "device_type"',
    ("score",),
    ("device_id", "device_type"),
)
RULE_PREDICTION = Query(
    "rule_prediction",
    'SELECT last("time_to_failure_h") AS "ttf_h" FROM "prediction" '
    f"WHERE time > now() - {RULE_WINDOWS['prediction']}s "
    'GROUP BY "device_id", "device_type", "metric"',
    ("ttf_h",),
    ("device_id", "device_type", "metric"),
)
RULE_OFFLINE = Query(
    "rule_offline",
    'SELECT last("online") AS "online" FROM "twin" '
    f"WHERE time > now() - {RULE_WINDOWS['offline']}s "
    'GROUP BY "device_id", "device_type"',
    ("online",),
    ("device_id", "device_type"),
)
#: Dead letters of one device over the window: the growth of its twin's invalid counter (the
#: twin knows the device's type, which a refused payload does not carry).
RULE_DEAD_LETTERS = Query(
    "rule_dead_letters",
    'SELECT spread("quality_invalid") AS "dead_letters" FROM "twin" '
    f"WHERE time > now() - {RULE_WINDOWS['dead_letters']}s "
    'GROUP BY "device_id", "device_type"',
    ("dead_letters",),
    ("device_id", "device_type"),
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
