"""Kafka durability and group membership come from the settings, not from constants: the
replication of every topic the platform or Faust creates, the in-sync replicas a write needs,
and each worker's static membership."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_stream.config import load_settings
from twin_stream.errors import ConfigError
from twin_stream.kafka import ensure_topics
from twin_stream.worker.app import WorkerConfig, create_app


def test_the_settings_carry_replication_and_membership(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_KAFKA__REPLICATION_FACTOR", "3")
    monkeypatch.setenv("TWIN_KAFKA__MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("TWIN_WORKER__INSTANCE_ID", "worker-a")
    monkeypatch.setenv("TWIN_WORKER__SESSION_TIMEOUT_S", "12")
    settings = load_settings()
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    assert settings.worker.instance_id == "worker-a"
    assert settings.worker.session_timeout_s == 12.0


def test_defaults_suit_the_one_broker_of_the_local_stack() -> None:
    settings = load_settings()
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (1, 1)


@pytest.mark.parametrize(("factor", "in_sync"), [(1, 2), (3, 0), (3, 4)])
def test_impossible_replication_is_refused_before_any_broker_is_asked(
    factor: int, in_sync: int
) -> None:
    # 127.0.0.1:9 answers nothing: the error must come before a connection is tried.
    with pytest.raises(ConfigError, match="MIN_INSYNC_REPLICAS"):
        ensure_topics("127.0.0.1:9", 6, {}, replication_factor=factor, min_insync_replicas=in_sync)


def test_the_worker_replicates_its_topics_and_changelogs_as_set(tmp_path: Path) -> None:
    config = WorkerConfig(
        bootstrap="127.0.0.1:9",
        data_dir=tmp_path,
        web_port=6070,
        store="memory://",
        replication_factor=3,
        min_insync_replicas=2,
    )
    app = create_app(config)
    assert app.conf.topic_replication_factor == 3  # Faust's internal topics and changelogs
    for table in app.tables.values():
        changelog = table.changelog_topic
        assert changelog.replicas in (None, 3)  # None: the app's factor, 3
        assert changelog.config["min.insync.replicas"] == "2"
    # static membership: a stable id per worker, tuned timeouts
    assert app.conf.consumer_group_instance_id == "twin-worker-127.0.0.1-6070"
    assert app.conf.broker_session_timeout == 15.0
    assert app.conf.broker_heartbeat_interval == 1.0
