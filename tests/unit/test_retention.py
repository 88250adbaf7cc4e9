"""Retention settings: every store's retention a setting with a default, and a value below its
floor refused with the variable and the reason."""

from __future__ import annotations

import pytest

from twin_stream.config import Settings, load_settings
from twin_stream.domain.retention import AUDIT_FLOOR_DAYS, DEFAULT_DAYS, Retention
from twin_stream.domain.topics import kafka_topics, worker_changelogs
from twin_stream.errors import ConfigError


def test_every_topic_kind_has_a_retention_setting_with_its_default() -> None:
    settings = Settings().retention
    for kind, days in DEFAULT_DAYS.items():
        assert getattr(settings, f"{kind}_days") == days
    configs = Retention().topic_configs()
    # every topic the platform makes is kept as set: none falls to the broker's default
    assert set(kafka_topics()) | set(worker_changelogs()) == set(configs)


def test_a_setting_from_the_environment_reaches_the_topic_configs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWIN_RETENTION__DLQ_DAYS", "5")
    monkeypatch.setenv("TWIN_RETENTION__AUDIT_DAYS", str(AUDIT_FLOOR_DAYS + 1))
    monkeypatch.setenv("TWIN_RETENTION__RAW_DAYS", "7")
    retention = load_settings().retention.retention()
    assert retention.topic_configs()["dlq"] == {"retention.ms": str(5 * 86_400_000)}
    assert retention.days("audit") == AUDIT_FLOOR_DAYS + 1
    assert retention.raw_days == 7
    assert "DURATION 7d REPLICATION 1 DEFAULT" in retention.influx_statements("twin")[0]


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TWIN_RETENTION__AUDIT_DAYS", "365", "the audit trail is kept for ever (-1)"),
        ("TWIN_RETENTION__AUDIT_DAYS", "0", "the audit trail is kept for ever (-1)"),
        ("TWIN_RETENTION__DLQ_DAYS", "0", "at least 1 day, not 0"),
        ("TWIN_RETENTION__RAW_DAYS", "-1", "keeps its raw points 1 day or more"),
    ],
)
def test_a_retention_below_its_floor_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith(f"{variable}: ")
    assert reason in str(refused.value)


def test_a_topic_kind_without_a_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="no retention setting for topic kinds"):
        Retention(topics={"fleet": 3})
