"""The Faust worker on a real Kafka that wants SASL (PLAIN, on an extra SASL_PLAINTEXT listener of
the stack's Kafka): it logs in with the same TWIN_KAFKA__* settings as the bridge and the sink,
consumes and produces through that listener, and a wrong password stops it with one clear line."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic import SecretStr

from simulators.device import SimulatedDevice
from tests.conftest import Workers
from twin_stream.bridge.routing import route
from twin_stream.config import KafkaSettings
from twin_stream.devtools.stack import Stack, free_port
from twin_stream.devtools.stack.harness import twin_stream_argv
from twin_stream.domain.devices import fleet_device
from twin_stream.domain.topics import kafka_topics, mqtt_topic
from twin_stream.kafka import ensure_topics
from twin_stream.kafka_security import kafka_python_options

pytestmark = pytest.mark.services

USER = "twin-worker"


@dataclass(frozen=True)
class SaslKafka:
    plain_bootstrap: str  # the broker's own PLAINTEXT listener
    sasl_bootstrap: str
    password: str

    def settings(self, password: str | None = None) -> KafkaSettings:
        return KafkaSettings(
            bootstrap=self.sasl_bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username=USER,
            sasl_password=SecretStr(password or self.password),
        )

    def env(self, password: str | None = None) -> dict[str, str]:
        """The worker's environment: its Kafka settings, as a user sets them."""
        return {
            **os.environ,
            "TWIN_KAFKA__BOOTSTRAP": self.sasl_bootstrap,
            "TWIN_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "TWIN_KAFKA__SASL_MECHANISM": "PLAIN",
            "TWIN_KAFKA__SASL_USERNAME": USER,
            "TWIN_KAFKA__SASL_PASSWORD": password or self.password,
        }


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslKafka]:
    password = secrets.token_urlsafe(18)
    stack = Stack(
        tmp_path_factory.mktemp("sasl-kafka"),
        services=["kafka"],
        kafka_sasl_users={USER: password},
    )
    state = stack.up(timeout=120)
    info = state.services["kafka"]
    yield SaslKafka(info.url, info.extra["sasl_bootstrap"], password)
    stack.down()


def worker_args(prefix: str, data_dir: Path) -> list[str]:
    return ["worker", "--web-port", str(free_port()), "--data-dir", str(data_dir)] + [
        "--topic-prefix",
        prefix,
    ]


def test_the_worker_consumes_and_produces_through_a_sasl_listener(
    sasl_kafka: SaslKafka, unique: str, workers: Callable[..., Workers]
) -> None:
    prefix = f"t{unique}"
    topics = kafka_topics(prefix)
    options = kafka_python_options(sasl_kafka.settings())
    ensure_topics(sasl_kafka.sasl_bootstrap, 6, options, topics)
    # Three readings of one device, as the bridge forwards them.
    device_id = "pump-0001"
    device = SimulatedDevice.create(device_id, fleet_device(1)[1], seed=3)
    now = datetime.now(UTC)
    with KafkaProducer(bootstrap_servers=sasl_kafka.sasl_bootstrap, **options) as producer:
        for i in range(3):
            payload = device.telemetry_payload(float(i), 1.0, now)
            record = route(mqtt_topic(device_id, "telemetry"), payload, now=now, topics=topics)
            assert record.reason is None, record.reason
            producer.send(record.kafka_topic, key=record.key, value=record.value)
        producer.flush(10)

    worker = workers(sasl_kafka.sasl_bootstrap, prefix, sasl_kafka.env()).start(0)
    consumer = KafkaConsumer(
        topics["twins"],
        bootstrap_servers=sasl_kafka.sasl_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        **options,
    )
    twins: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 150
        while not twins and time.monotonic() < deadline and worker.alive():
            for batch in consumer.poll(timeout_ms=1000).values():
                twins.extend(orjson.loads(r.value) for r in batch)
    finally:
        consumer.close()
        code = worker.stop(60)
    said = worker.log.read_text(errors="replace")
    assert twins, f"no twin from the worker (exit {code}):\n{said[-3000:]}"
    assert twins[0]["device_id"] == device_id
    assert "Unable to bootstrap" not in said and "Traceback" not in said


def test_a_wrong_password_stops_the_worker_with_one_clear_line(
    sasl_kafka: SaslKafka, unique: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        twin_stream_argv(worker_args(f"t{unique}", tmp_path / "worker")),
        env=sasl_kafka.env(password="not-" + sasl_kafka.password),
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, said
    assert f"refused the worker's login as '{USER}' (PLAIN)" in said
    assert "Authentication failed" in said
    assert sasl_kafka.password not in said  # no password in it: not even the wrong one
    assert "Traceback" not in said
    assert not (tmp_path / "worker").exists()  # stopped before the worker started
