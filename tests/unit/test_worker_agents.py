"""The worker's agents without a broker: Faust's ``agent.test_context()`` on a ``memory://``
store, every record the agents produce captured instead of sent.

A reading updates the twin table and produces a score and the twin's view; a record the worker
cannot process goes to the dead-letter topic in the bridge's format, with the reason; a dead
letter counts in the device's ``invalid`` counter.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest

from twin_stream.bridge.routing import dead_letter
from twin_stream.sink.points import to_points
from twin_stream.worker.app import WorkerConfig, create_app

RAW = (
    b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":1,'
    b'"ts":"2026-11-24T12:00:00Z","fw":"1.0.0","metrics":{"motor_current":0.3}}'
)
KEY = b"pump-0001"

Sent = list[tuple[str, bytes, bytes]]


@pytest.fixture
def sent() -> Iterator[Sent]:
    """Every record the agents produce, as (topic, key, value), instead of sending it."""
    records: Sent = []

    async def send(topic: Any, *, key: bytes, value: bytes, **_: Any) -> None:
        records.append((topic.get_topic_name(), key, value))

    with mock.patch("faust.topics.Topic.send", new=send):
        yield records


@pytest.fixture
def app(tmp_path: Path) -> Any:
    config = WorkerConfig(
        bootstrap="127.0.0.1:9", data_dir=tmp_path, web_port=6066, store="memory://"
    )
    return create_app(config)


def _of(sent: Sent, topic: str) -> list[bytes]:
    return [value for name, _, value in sent if name == topic]


async def _put(agent: Any, *records: tuple[bytes, bytes]) -> None:
    async with agent.test_context() as test_agent:
        for key, value in records:
            await test_agent.put(key=key, value=value)


def test_a_reading_updates_the_twin_table_and_produces_a_score_and_the_twin(
    app: Any, sent: Sent
) -> None:
    asyncio.run(_put(app.agents["twin-worker.telemetry"], (KEY, RAW)))
    assert len(_of(sent, "twin.scores")) == 1
    (view,) = [orjson.loads(v) for v in _of(sent, "twin.twins")]
    assert view["device_id"] == "pump-0001" and view["quality"]["accepted"] == 1
    twin = orjson.loads(app.tables["twins"][KEY])
    assert twin["last_seq"] == 1
    assert _of(sent, "twin.dlq") == []


def test_an_unprocessable_reading_is_dead_lettered_with_its_reason(app: Any, sent: Sent) -> None:
    bad = b'{"device_id":"pump-0001","seq":2}'  # no device_type: no schema to parse it with
    asyncio.run(_put(app.agents["twin-worker.telemetry"], (KEY, RAW), (KEY, bad)))
    (letter,) = [(k, orjson.loads(v)) for name, k, v in sent if name == "twin.dlq"]
    key, body = letter
    assert key == KEY
    # The bridge's dead-letter format, field for field.
    bridge_format = orjson.loads(dead_letter("t", b"", "r", _now(), "pump-0001").value)
    assert body.keys() == bridge_format.keys()
    assert body["device_id"] == "pump-0001"
    assert body["mqtt_topic"] == "twin/v1/devices/pump-0001/telemetry"
    assert body["reason"] == "(payload): telemetry without a device_type [unprocessable]"
    assert base64.b64decode(body["payload_base64"]) == bad
    assert len(_of(sent, "twin.scores")) == 1  # only the good reading was scored


def test_an_invalid_status_is_dead_lettered_with_the_field_and_the_rule(
    app: Any, sent: Sent
) -> None:
    bad = b'{"v":1,"device_id":"pump-0001","state":"sleepy","ts":"2026-11-24T12:00:00Z"}'
    asyncio.run(_put(app.agents["twin-worker.status"], (KEY, bad)))
    (body,) = [orjson.loads(v) for v in _of(sent, "twin.dlq")]
    assert body["mqtt_topic"] == "twin/v1/devices/pump-0001/status"
    assert body["reason"].startswith("state: Input should be 'online' or 'offline'")
    # The sink finds the rule in it (the dead_letter measurement's "rule" tag).
    (point,) = to_points("dlq", orjson.dumps(body))
    assert point._tags["rule"] == "literal_error"


def test_a_bad_command_names_its_kafka_topic(app: Any, sent: Sent) -> None:
    asyncio.run(_put(app.agents["twin-worker.commands"], (KEY, b"{}")))
    (body,) = [orjson.loads(v) for v in _of(sent, "twin.dlq")]
    assert body["mqtt_topic"] == "twin.commands"  # a command never came over MQTT


def test_a_dead_letter_counts_in_the_twins_invalid_counter(app: Any, sent: Sent) -> None:
    letter = dead_letter("twin/v1/devices/pump-0001/telemetry", b"{", "bad", _now(), "pump-0001")
    asyncio.run(_put(app.agents["twin-worker.dlq"], (KEY, letter.value)))
    twin = orjson.loads(app.tables["twins"][KEY])
    assert twin["quality"]["invalid"] == 1
    (view,) = [orjson.loads(v) for v in _of(sent, "twin.twins")]
    assert view["quality"]["invalid"] == 1


def _now() -> datetime:
    return datetime(2026, 11, 24, 12, tzinfo=UTC)
