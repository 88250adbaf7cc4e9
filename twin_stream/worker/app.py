"""The Faust app of one worker process: its configuration, topics and tables, and the wiring of
agents (:mod:`~twin_stream.worker.agents`), the device cache and its checkpoints
(:mod:`~twin_stream.worker.checkpoint`) and the twin API (:mod:`~twin_stream.worker.views`,
its audit trail :mod:`~twin_stream.worker.audit_views`, and its guard, one middleware on every
route: :mod:`~twin_stream.worker.web_auth`).

Topics are keyed by device_id and co-partitioned, so one worker owns a device's twin and models
(tables backed by changelog topics, stored with rocksdict). Several ``twin-stream worker``
processes share the partitions; each has its own data dir and web port.

The worker reaches Kafka with the same security settings as the bridge and the sink
(``TWIN_KAFKA__SECURITY_PROTOCOL`` and the SASL and TLS settings), as Faust's broker
credentials (:func:`twin_stream.kafka_security.faust_credentials`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import faust
from faust.types.auth import CredentialsT

from twin_stream.domain.retention import Retention
from twin_stream.domain.topics import DEVICE_TABLES
from twin_stream.errors import KafkaError, KafkaUnavailable
from twin_stream.kafka import kafka_topics
from twin_stream.worker.agents import register_agents
from twin_stream.worker.alert_actions import register_alert_agents
from twin_stream.worker.alert_views import register_alert_views
from twin_stream.worker.audit_views import register_audit_views
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.commands import CommandDesk
from twin_stream.worker.fleet import FleetModels, register_fleet
from twin_stream.worker.health import register_health
from twin_stream.worker.replay import install_replay
from twin_stream.worker.views import register_views
from twin_stream.worker.web_auth import Authenticator, install_auth

__all__ = ["WorkerConfig", "check_broker_login", "create_app", "run_worker"]


def check_broker_login(
    bootstrap: str, credentials: CredentialsT | None, *, timeout_s: float = 10.0
) -> None:
    """Log in to Kafka as the worker will (Faust's client, aiokafka, with ``credentials``) and
    stop with a clear error if the broker refuses: Faust's client only logs the broker's reason
    and then fails with "Unable to bootstrap", and kafka-python does not even log it.

    Tries each bootstrap server in turn until one answers; a refused login is a
    :class:`KafkaError` naming the user and the broker's reason, no broker answering a
    :class:`KafkaUnavailable`."""
    from aiokafka import errors as aiokafka_errors
    from aiokafka.conn import create_conn
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = dict(credentials_to_aiokafka_auth(credentials))
    who = getattr(credentials, "username", None)
    login = f"login as {who!r} ({auth.get('sasl_mechanism')})" if who else "login"
    refusals = (
        aiokafka_errors.SaslAuthenticationFailed,
        aiokafka_errors.UnsupportedSaslMechanismError,
        aiokafka_errors.IllegalSaslStateError,
    )

    async def attempt() -> None:
        last: BaseException | None = None
        for server in (s.strip() for s in bootstrap.split(",")):
            host, _, port = server.rpartition(":")
            try:
                conn = await create_conn(
                    host,
                    int(port),
                    client_id="twin-stream-worker-login",
                    request_timeout_ms=int(timeout_s * 1000),
                    **auth,
                )
            except refusals as e:
                refused = f"kafka {server}: the broker refused the worker's {login}: {e}"
                raise KafkaError(refused) from e
            except (OSError, TimeoutError, ValueError, aiokafka_errors.KafkaError) as e:
                last = e  # this one is not there: the next one may be
                continue
            conn.close()
            return
        raise KafkaUnavailable(
            f"kafka {bootstrap}: no broker answered the worker's {login}: {last}"
        )

    # A loop of its own, never made current: Faust makes (and owns) the worker's loop later.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(attempt())
    finally:
        # A few turns for the closed connection's transport and reader task to finish.
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))
        loop.close()


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
    #: How far back (records) a telemetry partition may be replayed after a rebalance.
    replay_max_records: int = 200_000
    heartbeat_check_s: float = 10.0
    #: How often (s) each worker reads the fleet's failure lessons again (twin.fleet).
    fleet_refresh_s: float = 30.0
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
    #: Alerts (:mod:`~twin_stream.worker.alert_actions`): an unacknowledged critical alert
    #: pages again every this many minutes (0: never), a shelf lasts at most this long, and the
    #: alert clock runs every this many seconds.
    alert_renotify_min: float = 15.0
    alert_max_shelve_min: float = 480.0
    alert_check_s: float = 10.0
    #: Who may use the twin API (:mod:`twin_stream.worker.web_auth`): the tokens file, or the
    #: same JSON from TWIN_API__TOKENS (which wins); neither: every request is refused.
    tokens_file: Path | None = None
    tokens_json: str | None = field(default=None, repr=False)
    #: How the worker logs in to Kafka (:func:`~twin_stream.kafka_security.faust_credentials`);
    #: None: PLAINTEXT.
    broker_credentials: CredentialsT | None = None
    #: Static group membership: a stable id per worker (default: ``{group}-{host}-{port}``), so
    #: a worker restarted within ``session_timeout_s`` takes its partitions back without a
    #: rebalance of the whole group. A worker killed for good is noticed after the session
    #: timeout; heartbeats go every ``heartbeat_interval_s`` (at most a third of it).
    instance_id: str | None = None
    session_timeout_s: float = 15.0
    heartbeat_interval_s: float = 1.0
    #: Replication of every topic the worker creates (changelogs, Faust's own) and the in-sync
    #: replicas a write needs: 1 and 1 on the local stack, 3 and 2 in production (docs/deploy.md).
    replication_factor: int = 1
    min_insync_replicas: int = 1
    #: How long each topic the worker creates keeps its records (docs/security.md).
    retention: Retention = field(default_factory=Retention)


def create_app(config: WorkerConfig) -> faust.App:
    """Build the worker app (agents, tables, timer, views) for one process."""
    names = kafka_topics(config.topic_prefix)
    app_id = f"{config.topic_prefix}-worker"  # the consumer group the workers share
    app = faust.App(
        app_id,
        broker=f"kafka://{config.bootstrap}",
        broker_credentials=config.broker_credentials,
        store=config.store,
        datadir=str(config.data_dir),
        web_port=config.web_port,
        web_host=config.web_host,
        # A worker reachable only on loopback stays there; one advertised by name (compose,
        # several machines) listens on every interface.
        web_bind=config.web_host if config.web_host in ("127.0.0.1", "localhost") else "0.0.0.0",
        canonical_url=f"http://{config.web_host}:{config.web_port}",
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication_factor,
        consumer_group_instance_id=(
            config.instance_id or f"{app_id}-{config.web_host}-{config.web_port}"
        ),
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=config.heartbeat_interval_s,
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
        # Faust's own views (/router, /table, the statistics at /, /graph, /performance) are
        # off: the twin API is the interface. What is left of Faust's (its "/" index) needs
        # the admin role, as every route the API does not name (web_auth).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )
    durable = {"min.insync.replicas": str(config.min_insync_replicas)}
    kept = config.retention.topic_configs()
    topics = {
        kind: app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            partitions=config.partitions,
            replicas=config.replication_factor,
            config={**durable, **kept.get(kind, {})},
        )
        for kind, name in names.items()
    }
    # The worker's device tables (DEVICE_TABLES): the twins, their models, and each device's
    # replay point (where its telemetry is read again from after a rebalance: the reading after its
    # last checkpoint, and its de-duplication window then). bytes keys and values: Faust stores
    # them raw (its default would be JSON). The changelogs are replicated as every other topic.
    twins, models, replay = (
        app.Table(
            name,
            default=None,
            partitions=config.partitions,
            key_type=bytes,
            value_type=bytes,
            extra_topic_configs=durable,
        )
        for name in DEVICE_TABLES
    )
    devices = DeviceCache(
        twins,
        models,
        every=config.checkpoint_every,
        interval_s=config.checkpoint_interval_s,
        replay=replay,
    )
    # Where a PUT on the device's owner waits for the commands agent's verdict on its change.
    desk = CommandDesk(topics)
    fleet = FleetModels()
    register_fleet(app, config.bootstrap, topics, fleet, refresh_s=config.fleet_refresh_s)
    register_agents(
        app,
        topics,
        devices,
        group=app_id,
        heartbeat_check_s=config.heartbeat_check_s,
        batch_max=config.batch_max,
        batch_within_s=config.batch_within_s,
        desk=desk,
        fleet=fleet.get,
    )

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def forget_on_assignment(app: Any, assigned: Any = None, **_: Any) -> None:
        devices.on_assigned()

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def replay_after_checkpoints(app: Any, **_: Any) -> None:
        # The tables are recovered; Faust seeks the streams to their committed offsets next.
        install_replay(
            app.consumer,
            names["telemetry"],
            devices.replay_points,
            max_records=config.replay_max_records,
        )

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_on_revocation(app: Any, revoked: Any = None, **_: Any) -> None:
        devices.on_revoked()

    register_views(
        app,
        config,
        twins,
        topics["commands"],
        devices.peek,
        audit_topic=topics["audit"],
        lifecycle_topic=topics["lifecycle"],
        desk=desk,
    )
    register_audit_views(app, config.bootstrap, topics["audit"])
    register_alert_agents(
        app,
        topics,
        devices,
        group=app_id,
        renotify_every=(
            timedelta(minutes=config.alert_renotify_min) if config.alert_renotify_min else None
        ),
        max_shelve_minutes=config.alert_max_shelve_min,
        check_s=config.alert_check_s,
    )
    register_alert_views(
        app,
        twins,
        devices.peek,
        actions_topic=topics["alert_actions"],
        audit_topic=topics["audit"],
        max_shelve_minutes=config.alert_max_shelve_min,
    )
    register_health(app)
    install_auth(app, Authenticator(tokens_json=config.tokens_json, tokens_file=config.tokens_file))
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
