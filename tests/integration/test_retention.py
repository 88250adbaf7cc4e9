"""Retention on the real stores: the stack's InfluxDB keeps raw points and hourly summaries as
the settings say (its continuous query's SELECT run on the real engine), and every Kafka topic
gets its retention on creation, and again when the setting changes."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from tests.conftest import influxql, rows
from twin_stream.domain.retention import Retention
from twin_stream.domain.topics import kafka_topics, worker_changelogs
from twin_stream.kafka import ensure_topics

pytestmark = pytest.mark.services

DAY_MS = 24 * 3600 * 1000


def test_the_stack_keeps_raw_points_30_days_and_hourly_summaries_two_years(
    influxdb_url: str,
) -> None:
    policies = {
        r["name"]: r for r in rows(influxdb_url, "twin", 'SHOW RETENTION POLICIES ON "twin"')
    }
    assert policies["raw"]["duration"] == "720h0m0s" and policies["raw"]["default"] is True
    assert policies["summaries"]["duration"] == "17520h0m0s"
    assert policies["summaries"]["default"] is False
    queries = influxql(influxdb_url, "SHOW CONTINUOUS QUERIES")["results"][0]["series"]
    (twin,) = [s for s in queries if s["name"] == "twin"]
    assert [name for name, _ in twin["values"]] == ["hourly"]
    assert "INTO twin.summaries.:MEASUREMENT" in twin["values"][0][1].replace('"', "")


def test_the_hourly_summary_is_the_mean_of_each_numeric_field_by_tags(
    influxdb_url: str, unique: str
) -> None:
    measurement = unique.replace("-", "_")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    start_ms = int(hour.timestamp() * 1000)
    lines = [
        f'{measurement},device_id=pump-0001 score={s},state="ok" {start_ms + i * 60_000}'
        for i, s in enumerate([0.1, 0.3, 0.5])
    ] + [f"{measurement},device_id=vent-0002 score=0.9 {start_ms + 120_000}"]
    # The sink's v2 write lands in the database's default policy, "raw".
    request = urllib.request.Request(
        f"{influxdb_url}/api/v2/write?bucket=twin&precision=ms",
        data="\n".join(lines).encode(),
        method="POST",
        headers={"Authorization": "Token unused"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    end = hour + timedelta(hours=1)
    where = f"WHERE time >= '{hour.isoformat()}' AND time < '{end.isoformat()}' "
    result = influxql(influxdb_url, Retention.summary_query("twin", where), "twin")["results"][0]
    assert "error" not in result, result
    summaries = rows(
        influxdb_url, "twin", f'SELECT * FROM "twin"."summaries"."{measurement}" GROUP BY *'
    )
    by_device = {r["device_id"]: r for r in summaries}
    assert by_device["pump-0001"]["mean_score"] == pytest.approx(0.3)
    assert by_device["vent-0002"]["mean_score"] == pytest.approx(0.9)
    assert by_device["pump-0001"]["time"] == start_ms
    assert "mean_state" not in by_device["pump-0001"]  # a string has no mean: left out


def _retention_ms(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t, ["retention.ms", "cleanup.policy"])
                for t in topics
            ],
            config_filter="all",
        )
    finally:
        admin.close()
    return {
        name: int(configs["retention.ms"]["value"])
        if configs["cleanup.policy"]["value"] == "delete"
        else configs["cleanup.policy"]["value"]
        for name, configs in described["topic"].items()
    }


def test_every_topic_is_kept_as_set_and_a_changed_setting_reaches_existing_topics(
    kafka_bootstrap: str, unique: str
) -> None:
    prefix = unique.replace("_", "-")
    topics = {**kafka_topics(prefix), **worker_changelogs(prefix)}
    ensure_topics(kafka_bootstrap, 1, {}, topics, retention=Retention(topics={"dlq": 7}))
    kept = _retention_ms(kafka_bootstrap, list(topics.values()))
    assert kept[topics["dlq"]] == 7 * DAY_MS
    assert kept[topics["telemetry"]] == 30 * DAY_MS
    assert kept[topics["alerts"]] == 365 * DAY_MS
    assert kept[topics["audit"]] == -1 and kept[topics["fleet"]] == -1
    assert kept[topics["models_changelog"]] == "compact"
    assert set(kept) == set(topics.values())  # every topic has its retention, none forgotten

    # A later start with another setting brings the topics that exist in line.
    ensure_topics(kafka_bootstrap, 1, {}, topics, retention=Retention(topics={"dlq": 3}))
    deadline = time.monotonic() + 30
    while _retention_ms(kafka_bootstrap, [topics["dlq"]])[topics["dlq"]] != 3 * DAY_MS:
        assert time.monotonic() < deadline, "the dlq topic's retention was not changed"
        time.sleep(0.5)
    assert _retention_ms(kafka_bootstrap, [topics["telemetry"]])[topics["telemetry"]] == 30 * DAY_MS
