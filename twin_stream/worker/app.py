"""The Faust app of one worker process: its configuration, topics and tables, and the wiring of
agents (:mod:`~twin_stream.worker.agents`), the device cache and its checkpoints
(:mod:`~twin_stream.worker.checkpoint`) and the twin API (:mod:`~twin_stream.worker.views`).

Topics are keyed by device_id and co-partitioned, so one worker owns a device's twin and models
(tables backed by changelog topics, stored with rocksdict). Several ``twin-stream worker``
processes share the partitions; each has its own data dir and web port.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from twin_stream.kafka import kafka_topics
from twin_stream.worker.agents import register_agents
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.views import register_views

__all__ = ["WorkerConfig", "create_app", "run_worker"]


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    data_dir: Path
    web_port: int
    web_host: str = "127.0.0.1"
    topic_prefix: str = "twin"
    partitions: int = 6
    checkpoint_every: int = 200
    checkpoint_interval_s: float = 30.0
    heartbeat_check_s: float = 10.0
    #: Telemetry micro-batches: at most this many events, gathered for at most this long.
    batch_max: int = 500
    batch_within_s: float = 0.01
    #: The table store; ``memory://`` for tests without a disk store.
    store: str = "rocksdb://"
    #: Run on uvloop (Faust's per-event path is about a third cheaper on it).
    uvloop: bool = True
    #: After start-up, move every object made so far out of the garbage collector's sight
    #: (gc.freeze), so its collections scan only what the events make.
    gc_freeze: bool = True
    #: The producer gathers output records this long (s) and up to this many bytes per batch.
    producer_linger_s: float = 0.005
    producer_max_batch_bytes: int = 1 << 20


def create_app(config: WorkerConfig) -> faust.App:
    """Build the worker app (agents, tables, timer, views) for one process."""
    names = kafka_topics(config.topic_prefix)
    app_id = f"{config.topic_prefix}-worker"  # the consumer group the workers share
    app = faust.App(
        app_id,
        broker=f"kafka://{config.bootstrap}",
        store=config.store,
        datadir=str(config.data_dir),
        web_port=config.web_port,
        web_host=config.web_host,
        # A worker reachable only on loopback stays there; one advertised by name (compose,
        # several machines) listens on every interface.
        web_bind=config.web_host if config.web_host in ("127.0.0.1", "localhost") else "0.0.0.0",
        canonical_url=f"http://{config.web_host}:{config.web_port}",
        topic_partitions=config.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        # Let the producer gather output records into batches (Faust's default linger of 0
        # sends one produce request per record).
        producer_linger=config.producer_linger_s,
        producer_max_batch_size=config.producer_max_batch_bytes,
        producer_max_request_size=max(config.producer_max_batch_bytes, 1_000_000),
        autodiscover=False,
        web_in_thread=False,
    )
    topics = {
        kind: app.topic(name, key_type=bytes, value_type=bytes, partitions=config.partitions)
        for kind, name in names.items()
    }
    # bytes keys and values: Faust stores them raw (its default would be JSON).
    twins = app.Table(
        "twins", default=None, partitions=config.partitions, key_type=bytes, value_type=bytes
    )
    models = app.Table(
        "models", default=None, partitions=config.partitions, key_type=bytes, value_type=bytes
    )
    devices = DeviceCache(
        twins,
        models,
        every=config.checkpoint_every,
        interval_s=config.checkpoint_interval_s,
    )
    register_agents(
        app,
        topics,
        devices,
        group=app_id,
        heartbeat_check_s=config.heartbeat_check_s,
        batch_max=config.batch_max,
        batch_within_s=config.batch_within_s,
    )

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def forget_on_assignment(app: Any, assigned: Any = None, **_: Any) -> None:
        devices.on_assigned()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_on_revocation(app: Any, revoked: Any = None, **_: Any) -> None:
        devices.on_revoked()

    register_views(app, config, twins, topics["commands"], devices.peek)
    return app


class _Worker(faust.Worker):
    """Faust's worker, which also freezes the start-up heap once the app is running."""

    def __init__(self, app: faust.App, *, gc_freeze: bool, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._gc_freeze = gc_freeze

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        if self._gc_freeze:
            # Faust, aiokafka, the tables and the detectors' code make a large, long-lived heap
            # at start-up; frozen, each collection scans only the objects events make.
            gc.collect()
            gc.freeze()


def run_worker(config: WorkerConfig) -> None:
    """Run one worker process until SIGTERM or Ctrl-C."""
    if config.uvloop:
        import mode.loop

        mode.loop.use("uvloop")  # before the app makes its loop
    # aiokafka and Faust call log.debug for every message; with DEBUG disabled process-wide
    # each call returns at its first check instead of building a record.
    logging.disable(logging.DEBUG)
    app = create_app(config)
    _Worker(
        app, gc_freeze=config.gc_freeze, loglevel="WARNING", quiet=True
    ).execute_from_commandline()
