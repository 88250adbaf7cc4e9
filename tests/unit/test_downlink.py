"""The bridge's downlink without a broker: a Kafka outage delays commands, it never stops the
bridge (found by tests/e2e/test_chaos.py: the downlink's poll raised ``KafkaConnectionError:
111 ECONNREFUSED`` while Kafka was stopped, and the bridge exited)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from kafka import errors as kafka_errors

from twin_stream.bridge.downlink import Downlink
from twin_stream.domain.events import Command
from twin_stream.domain.messages import DesiredSettings

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


@dataclass
class Record:
    key: bytes
    value: bytes


def _document(command_id: str) -> bytes:
    return (
        Command(
            command_id=command_id,
            device_id="pump-0001",
            kind="set_desired",
            desired=DesiredSettings(rate=50.0),
            issued_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        .model_dump_json()
        .encode()
    )


class Consumer:
    """Answers each poll from a script: an exception to raise, or records; then stops."""

    def __init__(self, script: list[Any], stop: threading.Event) -> None:
        self.script = script
        self.stop = stop
        self.commits = 0
        self.commit_errors: list[Exception] = []

    def poll(self, timeout_ms: int) -> dict[str, list[Record]]:
        if not self.script:
            self.stop.set()
            return {}
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return {"twin.desired-0": step}

    def commit(self) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.commits += 1


class Info:
    rc = mqtt.MQTT_ERR_SUCCESS

    def is_published(self) -> bool:
        return True

    def wait_for_publish(self, timeout: float) -> None:
        return None


class Client:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def is_connected(self) -> bool:
        return True

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> Info:
        self.published.append((topic, payload))
        return Info()


def test_the_downlink_waits_out_kafka_and_delivers_afterwards(monkeypatch: Any) -> None:
    monkeypatch.setattr("twin_stream.bridge.downlink.MAX_BACKOFF_S", 0.01)
    stop = threading.Event()
    refused = kafka_errors.KafkaConnectionError("111 ECONNREFUSED")
    consumer = Consumer([refused, refused, [Record(b"pump-0001", _document("cmd-00000001"))]], stop)
    consumer.commit_errors = [kafka_errors.KafkaConnectionError("socket disconnected")]
    client = Client()
    downlink = Downlink(consumer, client)  # type: ignore[arg-type]
    downlink.run(stop)  # returns (the script ran out), does not raise
    assert [topic for topic, _ in client.published] == ["twin/v1/devices/pump-0001/desired"]
    assert consumer.commits == 0 and consumer.commit_errors == []  # its commit failed: logged


def test_a_refusal_from_kafka_still_stops_the_downlink() -> None:
    stop = threading.Event()
    consumer = Consumer([kafka_errors.TopicAuthorizationFailedError()], stop)
    downlink = Downlink(consumer, Client())  # type: ignore[arg-type]
    with pytest.raises(kafka_errors.TopicAuthorizationFailedError):
        downlink.run(stop)
