"""The sink on real Kafka and the real InfluxDB (v2 write API): every reading once, through an
outage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from simulators.fast_forward import readings
from simulators.fleet import FleetPlan
from tests.conftest import running_sink, stored_seqs, wait_until
from twin_stream.devtools.stack import Stack
from twin_stream.domain.topics import kafka_topics
from twin_stream.kafka import ensure_topics

pytestmark = pytest.mark.services


@pytest.fixture
def own_influxdb(tmp_path: Path) -> Iterator[Stack]:
    """An InfluxDB of this test's own, since the test stops and starts it."""
    stack = Stack(tmp_path / "influxdb", services=["influxdb"])
    stack.up(timeout=60)
    yield stack
    stack.down()


def test_every_reading_lands_once_even_across_a_30s_tsdb_outage(
    own_influxdb: Stack, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"s{unique}"
    topics = kafka_topics(prefix)
    ensure_topics(kafka_bootstrap, 6, {}, topics)
    assert own_influxdb.state is not None
    influx_url = own_influxdb.state.url("influxdb")
    plan = FleetPlan.generate(8, hours=1, fault_fraction=0.0, seed=41)
    start = datetime.now(UTC) - timedelta(hours=1)
    batch = list(readings(plan, interval_s=10, start=start))
    first, second = batch[: len(batch) // 2], batch[len(batch) // 2 :]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")

    def produce(items: list[object], redeliver: int = 0) -> None:
        for r in items + items[:redeliver]:  # redeliveries, as at-least-once upstream makes
            producer.send(
                topics["telemetry"],
                key=r.device_id.encode(),  # type: ignore[attr-defined]
                value=r.model_dump_json(exclude_none=True).encode(),
            )  # type: ignore[attr-defined]
        producer.flush(30)

    def stored() -> int:
        return len(stored_seqs(influx_url))

    try:
        with running_sink(kafka_bootstrap, influx_url, prefix, batch_size=500) as sink:
            produce(first, redeliver=50)
            assert wait_until(lambda: stored() == len(first), timeout=60)
            own_influxdb.stop_service("influxdb")
            outage_started = time.monotonic()
            produce(second)
            # The outage lasts 30 s, and until the sink has tried to write and failed (however
            # late a loaded machine lets it try).
            assert wait_until(lambda: sink.stats.write_failures >= 1, timeout=120, interval=1.0)
            while time.monotonic() - outage_started < 30:
                time.sleep(1)
            failures_during_outage = sink.stats.write_failures
            own_influxdb.start_service("influxdb")
            assert wait_until(lambda: stored() == len(batch), timeout=90)
    finally:
        producer.close()
    assert failures_during_outage >= 1  # it really tried and failed while the TSDB was down
    per_device: dict[str, list[int]] = {}
    for device_id, seq in stored_seqs(influx_url):
        per_device.setdefault(device_id, []).append(seq)
    for device in plan.devices:
        expected = sorted(r.seq for r in batch if r.device_id == device.device_id)
        assert sorted(per_device[device.device_id]) == expected  # each seq exactly once
    assert sink.stats.bad_records == 0
