"""A three-broker KRaft cluster on loopback (``stack up --kafka-brokers 3``): with replication 3
and two in-sync replicas, one broker stopped under load loses no acknowledged record and
duplicates none."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from tests.conftest import wait_until
from twin_stream.devtools.stack import Stack
from twin_stream.kafka import (
    close_librdkafka_producer,
    ensure_topics,
    make_librdkafka_producer,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("cluster"), services=["kafka"], kafka_brokers=3)
    stack.up(timeout=240)
    try:
        yield stack
    finally:
        stack.down()


def test_the_cluster_has_three_brokers_and_every_node_is_a_service(cluster: Stack) -> None:
    assert cluster.state is not None
    assert sorted(cluster.state.services) == ["kafka", "kafka-2", "kafka-3"]
    bootstrap = cluster.state.url("kafka")
    assert len(bootstrap.split(",")) == 3  # clients can start with any one node down
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def registered() -> list[int]:
        return sorted(int(b["broker_id"]) for b in admin.describe_cluster()["brokers"])

    try:
        # each node is up once it sees itself; the others' metadata may take a moment longer
        assert wait_until(lambda: registered() == [1, 2, 3], timeout=60), registered()
    finally:
        admin.close()


def test_a_broker_stopped_under_load_loses_and_duplicates_nothing(
    cluster: Stack, tmp_path: Path
) -> None:
    assert cluster.state is not None
    bootstrap = cluster.state.url("kafka")
    topic = "cluster-load"
    ensure_topics(bootstrap, 6, {}, {"load": topic}, replication_factor=3, min_insync_replicas=2)
    producer = make_librdkafka_producer(bootstrap, {})
    delivered: list[bytes] = []
    failed: list[str] = []

    def report(error: object, message: object) -> None:
        if error is not None:
            failed.append(str(error))
        else:
            delivered.append(message.value())  # type: ignore[attr-defined]

    stop = threading.Event()
    sent = 0

    def load() -> None:
        nonlocal sent
        while not stop.is_set():
            producer.produce(
                topic, key=f"dev-{sent % 20}".encode(), value=str(sent).encode(), on_delivery=report
            )
            sent += 1
            producer.poll(0)
            time.sleep(0.002)

    loader = threading.Thread(target=load)
    loader.start()

    def delivered_more(than: int) -> bool:
        return len(delivered) >= than

    # Each phase lasts as many delivered records as ~3 s, ~8 s and ~3 s of the load do on a
    # quiet machine (it produces one every 2 ms), however slowly they come.
    try:
        assert wait_until(lambda: delivered_more(1000), timeout=120)
        cluster.stop_service("kafka-2")  # SIGTERM's harsher cousin is the chaos suite's
        mark = len(delivered)
        assert wait_until(lambda: delivered_more(mark + 2500), timeout=180)
        cluster.start_service("kafka-2", timeout=180)
        mark = len(delivered)
        assert wait_until(lambda: delivered_more(mark + 1000), timeout=120)
    finally:
        stop.set()
        loader.join()
        assert close_librdkafka_producer(producer, timeout=60) == 0
    assert not failed
    assert len(delivered) == sent > 1000

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        values: list[int] = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                values += [int(r.value) for r in records]
    finally:
        consumer.close()
    assert sorted(values) == list(range(sent))  # every record once: none lost, none twice
