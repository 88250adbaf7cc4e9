"""How long each store keeps what it holds: every Kafka topic and the time-series store.

One table, :data:`DEFAULT_DAYS` (days a record is kept, by the topic's kind; ``-1``: for ever),
each entry a setting (``TWIN_RETENTION__<KIND>_DAYS``, :class:`twin_stream.config.
RetentionSettings`), applied by whoever creates the topics (:func:`twin_stream.kafka.
ensure_topics`: the bridge, the workers, the stack's tools), which also brings an existing
topic in line with the setting. The time-series store keeps its points for ``raw_days`` and
hourly summaries of every numeric field for ``summaries_days``
(:func:`influx_statements`: InfluxDB 1.x retention policies and a continuous query; compose's
InfluxDB 2 gets the same from ``deploy/influxdb/create-dbrp.sh``). The reasons for each default
are in docs/security.md, "How long things are kept".

Floors, never silently shorter: the audit trail is kept for ever or for at least
:data:`AUDIT_FLOOR_DAYS` (six years, the longest common legal minimum for records of who did
what to a medical device: set longer where the law of the place asks for it); the fleet's
failure lessons are the source the fleet model is rebuilt from, so they are not a setting and
are kept for ever; the workers' changelogs are compacted (each device's last state), never
expired. A shorter value is refused with the reason (:func:`check`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from twin_stream.domain.topics import WORKER_TABLES
from twin_stream.errors import ConfigError

__all__ = [
    "AUDIT_FLOOR_DAYS",
    "DEFAULT_DAYS",
    "DEFAULT_RAW_DAYS",
    "DEFAULT_SUMMARIES_DAYS",
    "FOREVER",
    "Retention",
    "RetentionTooShort",
    "check",
]

#: A retention of ``-1`` days: kept for ever (Kafka's ``retention.ms=-1``).
FOREVER: Final = -1
#: The shortest audit trail accepted, in days (six years), unless it is kept for ever.
AUDIT_FLOOR_DAYS: Final = 6 * 365
_DAY_MS: Final = 24 * 3600 * 1000
#: Days the time-series store keeps its raw points, and its hourly summaries.
DEFAULT_RAW_DAYS: Final = 30
DEFAULT_SUMMARIES_DAYS: Final = 730

#: Days each topic keeps its records, by kind (see docs/security.md for each reason).
DEFAULT_DAYS: Final[Mapping[str, int]] = {
    # what devices send: raw readings and the detector's view of them
    "telemetry": 30,
    "status": 30,
    "reported": 30,
    "ack": 30,
    "scores": 30,
    "predictions": 30,
    "twins": 30,
    # what people asked of devices and of alerts, and what the alerts were
    "commands": 365,
    "desired": 365,
    "alerts": 365,
    "alert_actions": 365,
    "lifecycle": 365,
    # what could not be taken in: long enough to look into and replay, short because a letter
    # may hold what a device should never have sent
    "dlq": 14,
    # who did what: for ever, or at least AUDIT_FLOOR_DAYS
    "audit": FOREVER,
}
#: Kinds whose retention is not a setting: the fleet's failure lessons are kept for ever.
_FIXED: Final[Mapping[str, dict[str, str]]] = {"fleet": {"retention.ms": "-1"}}
#: The workers' tables' changelogs (the kinds of :func:`~twin_stream.domain.topics.
#: worker_changelogs`) keep each key's last value, never expired.
_COMPACTED: Final = tuple(f"{table}_changelog" for table in WORKER_TABLES)


class RetentionTooShort(ConfigError):
    """A retention below its documented floor."""


def check(kind: str, days: int) -> int:
    """``days`` if it is a retention ``kind`` may have, else :class:`RetentionTooShort`.

    >>> check("audit", -1), check("dlq", 7)
    (-1, 7)
    >>> check("audit", 30)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twin_stream.domain.retention.RetentionTooShort: the audit trail is kept for ever (-1) ... not 30
    """
    if kind in ("raw", "summaries") and days < 1:
        raise RetentionTooShort(f"the time-series store keeps its {kind} points 1 day or more")
    if kind == "audit" and days != FOREVER and days < AUDIT_FLOOR_DAYS:
        raise RetentionTooShort(
            f"the audit trail is kept for ever (-1) or for at least {AUDIT_FLOOR_DAYS} days "
            f"(six years), not {days}"
        )
    if days != FOREVER and days < 1:
        raise RetentionTooShort(f"a retention is -1 (for ever) or at least 1 day, not {days}")
    return days


@dataclass(frozen=True)
class Retention:
    """Days each topic kind keeps its records (``topics``, over :data:`DEFAULT_DAYS`), and the
    time-series store's raw points and hourly summaries."""

    topics: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_DAYS))
    raw_days: int = DEFAULT_RAW_DAYS
    summaries_days: int = DEFAULT_SUMMARIES_DAYS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.topics) - set(DEFAULT_DAYS))
        if unknown:
            raise ConfigError(f"no retention setting for topic kinds {unknown}")
        for kind, days in self.topics.items():
            check(kind, days)
        check("raw", self.raw_days)
        check("summaries", self.summaries_days)

    def days(self, kind: str) -> int:
        return self.topics.get(kind, DEFAULT_DAYS[kind])

    def topic_configs(self) -> dict[str, dict[str, str]]:
        """Kafka topic configs by kind: ``retention.ms`` of every kind, and the changelogs'
        compaction.

        >>> configs = Retention().topic_configs()
        >>> configs["dlq"], configs["audit"], configs["twins_changelog"]
        ({'retention.ms': '1209600000'}, {'retention.ms': '-1'}, {'cleanup.policy': 'compact'})
        """
        configs = {
            kind: {"retention.ms": str(-1 if (d := self.days(kind)) == FOREVER else d * _DAY_MS)}
            for kind in DEFAULT_DAYS
        }
        configs |= {kind: dict(c) for kind, c in _FIXED.items()}
        configs |= {kind: {"cleanup.policy": "compact"} for kind in _COMPACTED}
        return configs

    def influx_statements(self, database: str) -> list[str]:
        """The InfluxQL that makes ``database`` keep points ``raw_days`` (its default policy
        ``raw``, where writes land) and hourly means of every numeric field ``summaries_days``
        (policy ``summaries``, filled by the continuous query ``hourly``). Each statement may
        run again: a policy that exists is altered to the setting; the query is made anew.

        >>> for q in Retention(raw_days=7).influx_statements("twin")[:2]:
        ...     print(q)
        CREATE RETENTION POLICY "raw" ON "twin" DURATION 7d REPLICATION 1 DEFAULT
        ALTER RETENTION POLICY "raw" ON "twin" DURATION 7d REPLICATION 1 DEFAULT
        """
        db = f'"{database}"'
        statements = []
        for policy, days, default in (
            ("raw", self.raw_days, " DEFAULT"),
            ("summaries", self.summaries_days, ""),
        ):
            for verb in ("CREATE", "ALTER"):
                statements.append(
                    f'{verb} RETENTION POLICY "{policy}" ON {db} DURATION {days}d '
                    f"REPLICATION 1{default}"
                )
        statements.append(f'DROP CONTINUOUS QUERY "hourly" ON {db}')
        statements.append(
            f'CREATE CONTINUOUS QUERY "hourly" ON {db} BEGIN {self.summary_query(database)} END'
        )
        return statements

    @staticmethod
    def summary_query(database: str, where: str = "") -> str:
        """The continuous query's SELECT: each measurement's hourly mean of every numeric
        field, by every tag, into the ``summaries`` policy (``where``: a time range, to fill
        the past or to check it)."""
        db = f'"{database}"'
        return (
            f'SELECT mean(*) INTO {db}."summaries".:MEASUREMENT FROM {db}."raw"./.*/ '
            f"{where}GROUP BY time(1h), *"
        )
