"""The long-running services: ``twin-stream bridge`` (and, as they land, worker and sink).

Each resolves its endpoints once here, at the CLI edge: flags and ``TWIN_*`` settings first,
then the local stack started by ``twin-stream stack up``. SIGTERM and Ctrl-C stop it cleanly.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from twin_stream.bridge import run_bridge
from twin_stream.bridge.uplink import MqttEndpoint
from twin_stream.config import Settings, parse_mqtt_url
from twin_stream.devtools import stack as local_stack
from twin_stream.domain.topics import kafka_topics
from twin_stream.errors import ConfigError, TwinStreamError
from twin_stream.mqtt_auth import BRIDGE_USER

console = Console(stderr=True)


def _stack_state(settings: Settings) -> local_stack.StackState:
    try:
        return local_stack.Stack.load(settings.stack.dir)
    except TwinStreamError as e:
        raise ConfigError(f"no endpoint configured and no local stack running: {e}") from e


def kafka_bootstrap(settings: Settings) -> str:
    return settings.kafka.bootstrap or _stack_state(settings).url("kafka")


def bridge_endpoint(settings: Settings, client_id: str) -> MqttEndpoint:
    url = settings.mqtt.url or _stack_state(settings).url("mosquitto")
    host, port, tls = parse_mqtt_url(url)
    password = settings.mqtt.password.get_secret_value() if settings.mqtt.password else None
    if password is None:
        creds = settings.mqtt.credentials_file or Path(
            _stack_state(settings).services["mosquitto"].extra["credentials_file"]
        )
        password = json.loads(creds.read_text())[settings.mqtt.username]["password"]
    context = ssl.create_default_context(cafile=settings.mqtt.ca_file) if tls else None
    return MqttEndpoint(host, port, settings.mqtt.username, password, client_id, context)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def bridge(
    client_id: Annotated[str | None, typer.Option(help="MQTT client id, unique per bridge")] = None,
    topic_prefix: Annotated[str, typer.Option(help="Kafka topic prefix")] = "twin",
) -> None:
    """Forward device messages MQTT -> Kafka and desired state Kafka -> MQTT."""
    settings = Settings()
    if settings.mqtt.username != BRIDGE_USER and settings.mqtt.password is None:
        raise typer.BadParameter("set TWIN_MQTT__PASSWORD for a non-default bridge account")
    try:
        endpoint = bridge_endpoint(settings, client_id or settings.bridge.client_id)
        bootstrap = kafka_bootstrap(settings)
    except (TwinStreamError, ValueError, KeyError, OSError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from e
    stop = _stop_on_signals()
    console.print(f"bridge: mqtt {endpoint.host}:{endpoint.port} <-> kafka {bootstrap}")
    stats = run_bridge(
        endpoint,
        bootstrap,
        stop=stop,
        share_group=settings.bridge.share_group,
        max_unacked=settings.bridge.max_unacked,
        partitions=settings.kafka.partitions,
        kafka_options=settings.kafka.client_options(),
        topics=kafka_topics(topic_prefix),
    )
    console.print(
        f"bridge stopped: {stats.received} received, {stats.forwarded} forwarded, "
        f"{stats.dead_lettered} dead-lettered"
    )


def worker(
    web_port: Annotated[int, typer.Option(help="Port of this worker's twin API")] = 6066,
    web_host: Annotated[
        str,
        typer.Option(
            envvar="TWIN_WORKER_WEB_HOST",
            help="Host name other workers reach this one's API at ('hostname': this machine's)",
        ),
    ] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option(help="This worker's table store (default .twin-stream/worker-PORT)"),
    ] = None,
    topic_prefix: Annotated[str, typer.Option(help="Kafka topic prefix")] = "twin",
    checkpoint_every: Annotated[int, typer.Option(help="Save models every K events")] = 200,
    checkpoint_interval: Annotated[float, typer.Option(help="...or every T seconds")] = 30.0,
) -> None:
    """Keep the twins and run the detectors (a Faust worker; run N of them to scale out)."""
    import faust

    from twin_stream.kafka import ensure_topics
    from twin_stream.worker.app import WorkerConfig, create_app

    settings = Settings()
    try:
        bootstrap = kafka_bootstrap(settings)
    except TwinStreamError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from e
    topics = kafka_topics(topic_prefix)
    ensure_topics(bootstrap, settings.kafka.partitions, settings.kafka.client_options(), topics)
    config = WorkerConfig(
        bootstrap=bootstrap,
        data_dir=data_dir or Path(f".twin-stream/worker-{web_port}"),
        web_port=web_port,
        web_host=socket.gethostname() if web_host == "hostname" else web_host,
        topic_prefix=topic_prefix,
        partitions=settings.kafka.partitions,
        checkpoint_every=checkpoint_every,
        checkpoint_interval_s=checkpoint_interval,
    )
    app = create_app(config)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def sink(
    topic_prefix: Annotated[str, typer.Option(help="Kafka topic prefix")] = "twin",
) -> None:
    """Write telemetry, scores, predictions, alerts and twins to InfluxDB (v2 write API)."""
    from twin_stream.sink import InfluxTarget, make_sink

    settings = Settings()
    try:
        bootstrap = kafka_bootstrap(settings)
        url = settings.influx.url or _stack_state(settings).url("influxdb")
    except TwinStreamError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from e
    target = InfluxTarget(
        url, settings.influx.token.get_secret_value(), settings.influx.org, settings.influx.bucket
    )
    writer = make_sink(
        bootstrap,
        target,
        group_id=settings.sink.group_id,
        topics=kafka_topics(topic_prefix),
        kafka_options=settings.kafka.client_options(),
        batch_size=settings.sink.batch_size,
        flush_interval_s=settings.sink.flush_interval_s,
    )
    console.print(f"sink: kafka {bootstrap} -> {url} (bucket {target.bucket})")
    stats = writer.run(_stop_on_signals())
    console.print(f"sink stopped: {stats.records} records, {stats.points} points written")
