"""``twin-stream stack``: the local real services (Mosquitto, Kafka, InfluxDB) for dev and tests."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli._common import DirOption, JsonOption, console, fail
from twin_stream.config import Settings
from twin_stream.devtools import stack as local_stack
from twin_stream.domain.devices import fleet_device
from twin_stream.domain.topics import kafka_topics, worker_changelogs
from twin_stream.errors import TwinStreamError
from twin_stream.kafka import ensure_topics

stack_app = typer.Typer(help="Run the local stack (Mosquitto, Kafka, InfluxDB).")


@stack_app.command("up")
def stack_up(
    ctx: typer.Context,
    root: DirOption = None,
    devices: Annotated[int, typer.Option(help="Device accounts to create (pump-0001...)")] = 20,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Only these services (repeatable)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness")] = 120.0,
    client_certs: Annotated[
        bool,
        typer.Option(
            "--client-certs", help="Mosquitto's TLS listener also wants a client certificate"
        ),
    ] = False,
    kafka_brokers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Kafka nodes (KRaft, broker and controller each); 3 survive the loss of one. "
            "Set TWIN_KAFKA__REPLICATION_FACTOR=3 and TWIN_KAFKA__MIN_INSYNC_REPLICAS=2 to "
            "use them",
        ),
    ] = 1,
    as_json: JsonOption = False,
) -> None:
    """Start the local services, wait until they are ready, print their URLs."""
    settings: Settings = ctx.obj
    stack = local_stack.Stack(
        root or settings.stack.dir,
        services=service or local_stack.ALL_SERVICES,
        device_ids=[fleet_device(i)[0] for i in range(1, devices + 1)],
        kafka_libs=settings.stack.kafka_libs,
        influxd=settings.stack.influxd,
        mqtt_require_certificate=client_certs,
        kafka_brokers=kafka_brokers,
        retention=settings.retention.retention(),
    )
    with console.status("starting services..."):
        try:
            state = stack.up(timeout=timeout, tie_to_parent=False)
            if "kafka" in state.services:  # the platform's topics, each kept as set
                ensure_topics(
                    state.url("kafka"),
                    settings.kafka.partitions,
                    {},
                    {**kafka_topics(), **worker_changelogs()},
                    replication_factor=settings.kafka.replication_factor,
                    min_insync_replicas=settings.kafka.min_insync_replicas,
                    retention=settings.retention.retention(),
                )
        except TwinStreamError as e:
            raise fail(e) from e
    urls = {n: s.url for n, s in state.services.items()}
    if "mosquitto" in state.services:  # its TLS listener, and the CA that clients verify it with
        extra = state.services["mosquitto"].extra
        urls |= {"mosquitto_tls": extra["tls_url"], "ca_file": extra["ca_file"]}
        if "client_certs_dir" in extra:  # clients/<name>/client.crt and client.key
            urls["client_certs_dir"] = extra["client_certs_dir"]
    if as_json:
        typer.echo(json.dumps(urls))
        return
    for name, url in urls.items():
        console.print(f"[green]✓[/] {name:16} {url}")
    console.print(f"state: {stack.state_file}")


@stack_app.command("down")
def stack_down(ctx: typer.Context, root: DirOption = None) -> None:
    """Stop every service the last ``stack up`` started under this root."""
    stack_root = root or ctx.obj.stack.dir
    try:
        state = local_stack.Stack.load(stack_root)
        local_stack.stop(state)
    except TwinStreamError as e:
        raise fail(e) from e
    console.print(f"stopped {', '.join(state.services)}")


@stack_app.command("status")
def stack_status(ctx: typer.Context, root: DirOption = None, as_json: JsonOption = False) -> None:
    """Show each service's URL, pid and whether it is up."""
    stack_root = root or ctx.obj.stack.dir
    try:
        report = local_stack.status(local_stack.Stack.load(stack_root))
    except TwinStreamError as e:
        raise fail(e) from e
    if as_json:
        typer.echo(json.dumps(report))
    else:
        table = Table("service", "url", "pid", "running", "port")
        for name, row in report.items():
            table.add_row(
                name,
                row["url"],
                str(row["pid"]),
                str(row["running"]),
                "open" if row["port_open"] else "closed",
            )
        Console().print(table)
    if not all(row["running"] and row["port_open"] for row in report.values()):
        raise typer.Exit(code=3)
