"""What the tests of the worker's agents share: an app on ``memory://`` and every record its
agents produce, captured instead of sent (used by test_worker_agents.py and test_errors.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from twin_stream.worker.app import WorkerConfig, create_app

#: (topic, key, value) of every record the agents produced.
Sent = list[tuple[str, bytes | None, bytes]]


@pytest.fixture
def sent() -> Iterator[Sent]:
    """Every record the agents produce, as (topic, key, value), instead of sending it."""
    records: Sent = []

    async def send(topic: Any, *, key: bytes | None, value: bytes, **_: Any) -> None:
        records.append((topic.get_topic_name(), key, value))

    with mock.patch("faust.topics.Topic.send", new=send):
        yield records


@pytest.fixture
def app(tmp_path: Path) -> Any:
    config = WorkerConfig(
        bootstrap="127.0.0.1:9", data_dir=tmp_path, web_port=6066, store="memory://"
    )
    return create_app(config)


async def put(agent: Any, *records: tuple[bytes | None, bytes]) -> None:
    """Put records into an agent one after the other, on Faust's test context."""
    async with agent.test_context() as test_agent:
        for key, value in records:
            await test_agent.put(key=key, value=value)
