"""What the integration tests share: ``twin-stream worker`` processes for one test
(:func:`workers`), and reading a Kafka topic back (:func:`topic_reader`, :func:`read_topic`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from tests.conftest import Workers


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    """``workers(bootstrap, prefix, env)``: worker processes on that Kafka and
    topic prefix (their data and logs under the test's tmp_path), every one stopped at the end
    of the test."""
    made: list[Workers] = []

    def make(bootstrap: str, prefix: str, env: dict[str, str] | None = None) -> Workers:
        made.append(Workers(tmp_path / f"workers-{len(made)}", bootstrap, prefix, env=env or {}))
        return made[-1]

    yield make
    for group in made:
        group.stop()


@contextmanager
def topic_reader(bootstrap: str, topic: str) -> Iterator[KafkaConsumer]:
    """A consumer of ``topic`` from its start, in no group, closed when the block ends."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        yield consumer
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[object]:
    """The records of ``topic`` from its start, once there are ``expected`` (or at
    ``timeout``), and a second more to see duplicates if there were any."""
    records: list[object] = []
    deadline = time.monotonic() + timeout
    with topic_reader(bootstrap, topic) as consumer:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # a little longer, to see duplicates if there were any
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    return records
