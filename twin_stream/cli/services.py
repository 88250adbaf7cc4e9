"""The long-running services: ``twin-stream bridge``, ``worker`` and ``sink``.

Each resolves its endpoints once, at start (see :mod:`twin_stream.cli._endpoints`): its
``TWIN_*`` settings, or the dev stack when ``twin-stream stack up`` runs, said on start.
SIGTERM and Ctrl-C stop it cleanly.
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer

from twin_stream.cli._common import console, fail
from twin_stream.cli._endpoints import Endpoints
from twin_stream.config import Settings
from twin_stream.domain.topics import kafka_topics, worker_changelogs
from twin_stream.errors import ConfigError, TwinStreamError
from twin_stream.kafka_security import kafka_python_options, librdkafka_options
from twin_stream.mqtt_auth import BRIDGE_USER
from twin_stream.redaction import install as install_redaction_key
from twin_stream.state_signing import install as install_state_key

TopicPrefix = Annotated[str, typer.Option(help="Kafka topic prefix")]


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def bridge(
    ctx: typer.Context,
    client_id: Annotated[str | None, typer.Option(help="MQTT client id, unique per bridge")] = None,
    topic_prefix: TopicPrefix = "twin",
) -> None:
    """Forward device messages MQTT -> Kafka and desired state Kafka -> MQTT."""
    from twin_stream.bridge import run_bridge

    settings: Settings = ctx.obj
    endpoints = Endpoints(settings)
    try:
        install_redaction_key(settings.privacy.redaction_key, production=settings.production)
        if settings.mqtt.username != BRIDGE_USER and settings.mqtt.password is None:
            raise ConfigError("set TWIN_MQTT__PASSWORD for a bridge account other than 'bridge'")
        endpoint = endpoints.mqtt(client_id or settings.bridge.client_id)
        bootstrap = endpoints.kafka_bootstrap()
        console.print(f"bridge: mqtt {endpoint.host}:{endpoint.port} <-> kafka {bootstrap}")
        stats = run_bridge(
            endpoint,
            bootstrap,
            stop=_stop_on_signals(),
            share_group=settings.bridge.share_group,
            shared=settings.bridge.shared,
            max_unacked=settings.bridge.max_unacked,
            partitions=settings.kafka.partitions,
            replication_factor=settings.kafka.replication_factor,
            min_insync_replicas=settings.kafka.min_insync_replicas,
            retention=settings.retention.retention(),
            kafka_options=kafka_python_options(settings.kafka),
            producer_options=librdkafka_options(settings.kafka),
            topics=kafka_topics(topic_prefix),
        )
    except TwinStreamError as e:
        raise fail(e) from e
    console.print(
        f"bridge stopped: {stats.received} received, {stats.forwarded} forwarded, "
        f"{stats.dead_lettered} dead-lettered"
    )


def worker(
    ctx: typer.Context,
    web_port: Annotated[
        int | None, typer.Option(help="Port of this worker's twin API [TWIN_WORKER__WEB_PORT]")
    ] = None,
    web_host: Annotated[
        str | None,
        typer.Option(
            help="Host name other workers reach this one's API at ('hostname': this machine's) "
            "[TWIN_WORKER__WEB_HOST]"
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="This worker's table store (default .twin-stream/worker-PORT)"),
    ] = None,
    topic_prefix: TopicPrefix = "twin",
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Save models every K events [TWIN_WORKER__CHECKPOINT_EVERY]")
    ] = None,
    checkpoint_interval: Annotated[
        float | None,
        typer.Option(help="...or every T seconds [TWIN_WORKER__CHECKPOINT_INTERVAL_S]"),
    ] = None,
) -> None:
    """Keep the twins and run the detectors (a Faust worker; run N of them to scale out)."""
    from twin_stream.kafka import ensure_topics
    from twin_stream.kafka_security import faust_credentials
    from twin_stream.worker.app import WorkerConfig, check_broker_login, run_worker

    settings: Settings = ctx.obj
    ws = settings.worker
    port = web_port if web_port is not None else ws.web_port
    host = web_host if web_host is not None else ws.web_host
    topics = kafka_topics(topic_prefix)
    try:
        install_redaction_key(settings.privacy.redaction_key, production=settings.production)
        install_state_key(settings.state.signing_key, production=settings.production)
        credentials = faust_credentials(settings.kafka)
        bootstrap = Endpoints(settings).kafka_bootstrap()
        if credentials is not None:  # a refused login said as such, not as "no broker"
            check_broker_login(bootstrap, credentials)
        # The tables' changelogs too, before Faust starts: a worker that subscribes before
        # another made them never sees their partitions in its metadata (PartitionsMismatch at
        # every table write: its agents crash and restart in a loop, scoring nothing).
        ensure_topics(
            bootstrap,
            settings.kafka.partitions,
            kafka_python_options(settings.kafka),
            {**topics, **worker_changelogs(topic_prefix)},
            replication_factor=settings.kafka.replication_factor,
            min_insync_replicas=settings.kafka.min_insync_replicas,
            retention=settings.retention.retention(),
        )
        _say_api_tokens(settings)
    except TwinStreamError as e:
        raise fail(e) from e
    config = WorkerConfig(
        bootstrap=bootstrap,
        data_dir=data_dir or ws.data_dir or Path(f".twin-stream/worker-{port}"),
        web_port=port,
        web_host=socket.gethostname() if host == "hostname" else host,
        topic_prefix=topic_prefix,
        partitions=settings.kafka.partitions,
        replication_factor=settings.kafka.replication_factor,
        min_insync_replicas=settings.kafka.min_insync_replicas,
        retention=settings.retention.retention(),
        instance_id=ws.instance_id,
        session_timeout_s=ws.session_timeout_s,
        heartbeat_interval_s=ws.heartbeat_interval_s,
        checkpoint_every=checkpoint_every if checkpoint_every is not None else ws.checkpoint_every,
        checkpoint_interval_s=(
            checkpoint_interval if checkpoint_interval is not None else ws.checkpoint_interval_s
        ),
        replay_max_records=ws.replay_max_records,
        batch_max=ws.batch_max,
        batch_within_s=ws.batch_within_s,
        uvloop=ws.uvloop,
        gc_freeze=ws.gc_freeze,
        alert_renotify_min=ws.alert_renotify_min,
        alert_max_shelve_min=ws.alert_max_shelve_min,
        alert_check_s=ws.alert_check_s,
        tokens_file=settings.api.tokens_file,
        tokens_json=settings.api.tokens,
        broker_credentials=credentials,
    )
    run_worker(config)


def _say_api_tokens(settings: Settings) -> None:
    """Where the twin API's tokens come from (an unreadable store stops the worker here), and
    a warning when there are none: then every request is refused."""
    from twin_stream.worker.web_auth import Authenticator

    api = settings.api
    tokens = Authenticator(tokens_json=api.tokens, tokens_file=api.tokens_file)
    if tokens.store.records:
        console.print(f"twin API: {len(tokens.store.records)} token(s) from {tokens.source}")
    else:
        console.print(
            f"[yellow]twin API: no tokens in {tokens.source}[/]: every request will be refused "
            "(401); make one with `twin-stream tokens add NAME --role admin`"
        )


def sink(ctx: typer.Context, topic_prefix: TopicPrefix = "twin") -> None:
    """Write telemetry, scores, predictions, alerts and twins to InfluxDB (v2 write API)."""
    from twin_stream.sink import InfluxTarget, make_sink

    settings: Settings = ctx.obj
    endpoints = Endpoints(settings)
    try:
        install_redaction_key(settings.privacy.redaction_key, production=settings.production)
        bootstrap = endpoints.kafka_bootstrap()
        url = endpoints.influx_url()
        target = InfluxTarget(
            url,
            settings.influx.token.get_secret_value(),
            settings.influx.org,
            settings.influx.bucket,
        )
        writer = make_sink(
            bootstrap,
            target,
            group_id=settings.sink.group_id,
            topics=kafka_topics(topic_prefix),
            kafka_options=kafka_python_options(settings.kafka),
            batch_size=settings.sink.batch_size,
            flush_interval_s=settings.sink.flush_interval_s,
            instance_id=settings.sink.instance_id
            or f"{settings.sink.group_id}-{socket.gethostname()}",
            session_timeout_s=settings.sink.session_timeout_s,
        )
        console.print(f"sink: kafka {bootstrap} -> {url} (bucket {target.bucket})")
        stats = writer.run(_stop_on_signals())
    except TwinStreamError as e:
        raise fail(e) from e
    console.print(f"sink stopped: {stats.records} records, {stats.points} points written")
