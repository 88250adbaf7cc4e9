"""The fleet model on a real Kafka: the worker that owns a device type's partition of
``twin.fleet`` learns the type's model into the ``fleet`` table, each failure once, and a
worker started afresh (an empty local store) restores the model from the table's changelog
before it learns the next failure; a lesson that does not validate is dead-lettered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from kafka import KafkaProducer

from tests.conftest import Workers
from tests.integration.conftest import topic_reader
from twin_stream.config import KafkaSettings
from twin_stream.devtools.stack import Stack
from twin_stream.devtools.stack.harness import ManagedProcess
from twin_stream.domain.detection.params import DETECTOR_VERSION
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.records import FleetLesson
from twin_stream.domain.topics import kafka_topics, worker_changelogs
from twin_stream.kafka import ensure_topics

pytestmark = pytest.mark.services

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = Stack(tmp_path_factory.mktemp("fleet-kafka"), services=["kafka"])
    state = stack.up(timeout=120)
    yield state.services["kafka"].url
    stack.down()


def lesson(k: int) -> FleetLesson:
    life = 100.0 + 10 * k
    history = [(float(t), max(0.0, t - (life - 60.0)) / 10.0) for t in range(0, int(life), 5)]
    return FleetLesson(
        device_id=f"chiller-{k + 1:04d}",
        device_type="mri_chiller",
        failed_at=T0 + timedelta(days=k),
        failed_after_h=life,
        history=history,
        detector_version=DETECTOR_VERSION,
    )


def wait_for_records(
    bootstrap: str,
    topic: str,
    done: object,
    worker: ManagedProcess,
    timeout_s: float = 150.0,
) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` (from its start) once ``done(records)`` holds; the worker's
    log in the failure when it does not (or the worker stopped)."""
    assert callable(done)
    records: list[tuple[bytes | None, bytes]] = []
    with topic_reader(bootstrap, topic) as consumer:
        deadline = time.monotonic() + timeout_s
        while not done(records) and time.monotonic() < deadline and worker.alive():
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend((r.key, r.value) for r in batch)
    said = worker.log.read_text(errors="replace")[-3000:]
    assert done(records), f"{topic}: {len(records)} records (exit {worker.exit_code}):\n{said}"
    return records


def failures(records: list[tuple[bytes | None, bytes]]) -> int:
    """Failures in the latest model of the chillers on the changelog (0 before one)."""
    latest = [value for key, value in records if key == b"mri_chiller"]
    return FleetModel.from_json(orjson.loads(latest[-1])).failures if latest else 0


def test_the_owner_learns_each_failure_once_and_a_new_worker_restores_the_model(
    bootstrap: str, unique: str, workers: Callable[..., Workers]
) -> None:
    prefix = f"t{unique}"
    topics = kafka_topics(prefix)
    changelog = worker_changelogs(prefix)["fleet_changelog"]
    ensure_topics(
        bootstrap, KafkaSettings().partitions, {}, {**topics, **worker_changelogs(prefix)}
    )
    lessons = [lesson(k) for k in range(4)]
    with KafkaProducer(bootstrap_servers=bootstrap) as producer:
        for item in [*lessons[:3], lessons[0]]:  # the first failure twice (a redelivery)
            producer.send(topics["fleet"], key=item.key, value=item.model_dump_json().encode())
        producer.send(topics["fleet"], key=b"mri_chiller", value=b'{"not": "a lesson"}')
        producer.flush(10)

    running = workers(bootstrap, prefix)
    worker = running.start(0)
    records = wait_for_records(bootstrap, changelog, lambda r: failures(r) >= 3, worker)
    letters = wait_for_records(bootstrap, topics["dlq"], lambda r: len(r) >= 1, worker)
    worker.stop(60)
    assert failures(records) == 3  # the redelivered failure was not learned twice
    (letter,) = [orjson.loads(value) for _, value in letters]
    assert letter["mqtt_topic"] == topics["fleet"] and "[missing]" in letter["reason"]

    # A worker with an empty local store: the model comes back from the changelog, and the
    # next failure is learned on top of it (a model learned afresh would hold 1).
    with KafkaProducer(bootstrap_servers=bootstrap) as producer:
        producer.send(
            topics["fleet"], key=lessons[3].key, value=lessons[3].model_dump_json().encode()
        )
        producer.flush(10)
    second = running.start(1)  # its own data dir: an empty local store
    records = wait_for_records(bootstrap, changelog, lambda r: failures(r) >= 4, second)
    second.stop(60)
    assert failures(records) == 4
    for process in (worker, second):
        assert "Traceback" not in process.log.read_text(errors="replace")
