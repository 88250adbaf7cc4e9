"""What the unit tests share: the worker's agents on ``memory://`` with every record they
produce captured instead of sent (the fixtures ``app`` and ``sent``, and :func:`put`), and one
simulated device's readings as the bridge forwards them (:func:`raw_readings`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from simulators.fast_forward import readings
from simulators.fleet import FleetPlan
from twin_stream.worker.app import WorkerConfig, create_app

# --- the worker's agents, without a broker (test_worker_agents.py, test_errors.py...) ---------

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


# --- readings (test_checkpoint.py, test_device_state.py, test_replay.py) ---------------------

#: The readings' clock: the last one is made a second before this.
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def raw_readings(n: int, *, faults: float = 0.0, seed: int = 3) -> list[bytes]:
    """``n`` readings of one device, one a second, ending at :data:`NOW`."""
    plan = FleetPlan.generate(1, hours=n / 3600, fault_fraction=faults, seed=seed)
    return [
        r.model_dump_json(exclude_none=True).encode()
        for r in readings(plan, interval_s=1.0, start=NOW - timedelta(seconds=n))
    ]
