"""The running pipeline the end-to-end tests share: the session's Mosquitto and Kafka, an
InfluxDB (the session's, or one of the module's own that a test may stop), the bridge and the
sink as threads of the test process and two ``twin-stream worker`` processes, on one topic
prefix per module.

A module's own fixture runs one with ``start_pipeline``, as a :class:`RunningPipeline` subclass
of its own that adds what its tests ask of the pipeline."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from tests.conftest import (
    MqttBroker,
    Workers,
    describe_sink,
    running_bridge,
    running_sink,
    sink_holds_its_partitions,
    wait_until,
)
from twin_stream.devtools.stack import Stack
from twin_stream.domain.topics import kafka_topics
from twin_stream.kafka import ensure_topics
from twin_stream.sink import Sink


@dataclass
class RunningPipeline:
    """The bridge, the sink and the workers of one module, and where to reach them."""

    broker: MqttBroker
    bootstrap: str
    prefix: str
    influx_url: str
    root: Path
    workers: Workers
    #: The twin API's tokens, by role.
    tokens: dict[str, str]
    #: The module's own InfluxDB, if it has one (a test stops it for an outage).
    tsdb: Stack | None = None
    #: The sink (a thread of the test process): what to report when its points do not come.
    sink: Sink | None = None

    @property
    def topics(self) -> dict[str, str]:
        return kafka_topics(self.prefix)

    def mqtt_fleet(self, plan: FleetPlan, **kwargs: Any) -> MqttFleet:
        """Simulated devices of ``plan`` on the broker, each with its own account."""
        passwords = {d.device_id: self.broker.account(d.device_id).password for d in plan.devices}
        return MqttFleet(
            plan, host="127.0.0.1", port=self.broker.port, passwords=passwords, **kwargs
        )


P = TypeVar("P", bound=RunningPipeline)


@dataclass
class StartPipeline:
    """``with start_pipeline(kind, name, ...) as pipeline``: a running pipeline, ``kind(...)``
    once both workers score, stopped when the block ends (the workers first, then the sink and
    the bridge, then the module's own InfluxDB). A module's fixture holds the block open, so
    that the threads it starts end with that fixture (the leak check holds it to that).

    ``name`` names its temp dir and, with the time, its topic prefix; ``worker_env`` and
    ``worker_args`` are the workers' (their API's tokens, say); ``reader`` is the token that
    asks the workers who owns what; ``own_tsdb`` gives it an InfluxDB of its own, else it
    writes to the session's."""

    broker: MqttBroker
    bootstrap: str
    tmp_path_factory: pytest.TempPathFactory
    request: pytest.FixtureRequest

    @contextmanager
    def __call__(
        self,
        kind: type[P],
        name: str,
        *,
        tokens: dict[str, str],
        worker_env: dict[str, str],
        worker_args: Sequence[str] = (),
        reader: str,
        sink_batch: int = 2000,
        own_tsdb: bool = False,
    ) -> Iterator[P]:
        root = self.tmp_path_factory.mktemp(name)
        with ExitStack() as running:
            tsdb = None
            if own_tsdb:
                tsdb = Stack(root / "tsdb", services=["influxdb"])
                tsdb.up(timeout=60)
                running.callback(tsdb.down)
                assert tsdb.state is not None
                influx_url = tsdb.state.url("influxdb")
            else:
                influx_url = self.request.getfixturevalue("influxdb_url")
            prefix = f"{name}{int(time.time())}"
            ensure_topics(self.bootstrap, 6, {}, kafka_topics(prefix))
            running.enter_context(running_bridge(self.broker, self.bootstrap, prefix))
            sink = running.enter_context(
                running_sink(self.bootstrap, influx_url, prefix, batch_size=sink_batch)
            )
            env, args = worker_env, list(worker_args)
            workers = Workers(root, self.bootstrap, prefix, env=env, args=args, token=reader)
            running.callback(workers.stop)
            for i in (0, 1):
                workers.start(i)
            # The second worker's joining moved partitions away from the first, which recovers
            # their tables: wait until both score before any test sends readings.
            assert wait_until(workers.ready, timeout=180, interval=0.5), workers.logs()
            # The checks of stored points need the sink in its group with every partition.
            assert wait_until(lambda: sink_holds_its_partitions(sink, 6), timeout=120), (
                describe_sink(sink)
            )
            yield kind(
                self.broker, self.bootstrap, prefix, influx_url, root, workers, tokens, tsdb, sink
            )


@pytest.fixture(scope="module")
def start_pipeline(
    mosquitto: MqttBroker,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> StartPipeline:
    """Starts this module's running pipelines (see :class:`StartPipeline`)."""
    return StartPipeline(mosquitto, kafka_bootstrap, tmp_path_factory, request)
