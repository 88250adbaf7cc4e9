"""The ``twin-stream`` command: the CLI edge where settings are read and logging is set up."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin_stream import stack as local_stack
from twin_stream.cli_bench import bench_app
from twin_stream.cli_demo import demo
from twin_stream.cli_eval import eval_app
from twin_stream.cli_grafana import grafana_app
from twin_stream.cli_services import bridge, sink, worker
from twin_stream.cli_simulate import simulate
from twin_stream.config import Settings
from twin_stream.domain.devices import fleet_device
from twin_stream.errors import TwinStreamError

app = typer.Typer(
    help="twin-stream: digital twins of medical devices, streamed.", no_args_is_help=True
)
stack_app = typer.Typer(help="Run the local stack (Mosquitto, Kafka, InfluxDB).")
app.command("demo")(demo)
app.add_typer(stack_app, name="stack")
app.command("simulate")(simulate)
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.add_typer(grafana_app, name="grafana")
app.command("bridge")(bridge)
app.command("worker")(worker)
app.command("sink")(sink)

console = Console(stderr=True)

DirOption = Annotated[
    Path | None, typer.Option("--dir", help="Stack root (default: $TWIN_STACK__DIR)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kafka-python logs every connection attempt at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)


def _fail(error: TwinStreamError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    _setup_logging(verbose)


@stack_app.command("up")
def stack_up(
    root: DirOption = None,
    devices: Annotated[int, typer.Option(help="Device accounts to create (pump-0001...)")] = 20,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Only these services (repeatable)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness")] = 120.0,
    as_json: JsonOption = False,
) -> None:
    """Start the local services, wait until they are ready, print their URLs."""
    settings = Settings()
    stack = local_stack.Stack(
        root or settings.stack.dir,
        services=service or local_stack.ALL_SERVICES,
        device_ids=[fleet_device(i)[0] for i in range(1, devices + 1)],
        kafka_libs=settings.stack.kafka_libs,
    )
    with console.status("starting services..."):
        try:
            state = stack.up(timeout=timeout, tie_to_parent=False)
        except TwinStreamError as e:
            raise _fail(e) from e
    if as_json:
        typer.echo(json.dumps({n: s.url for n, s in state.services.items()}))
        return
    for name, info in state.services.items():
        console.print(f"[green]✓[/] {name:16} {info.url}")
    console.print(f"state: {stack.state_file}")


@stack_app.command("down")
def stack_down(root: DirOption = None) -> None:
    """Stop every service the last ``stack up`` started under this root."""
    stack_root = root or Settings().stack.dir
    try:
        state = local_stack.Stack.load(stack_root)
        local_stack.stop(state)
    except TwinStreamError as e:
        raise _fail(e) from e
    console.print(f"stopped {', '.join(state.services)}")


@stack_app.command("status")
def stack_status(root: DirOption = None, as_json: JsonOption = False) -> None:
    """Show each service's URL, pid and whether it is up."""
    stack_root = root or Settings().stack.dir
    try:
        report = local_stack.status(local_stack.Stack.load(stack_root))
    except TwinStreamError as e:
        raise _fail(e) from e
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


@app.command("mqtt-auth")
def mqtt_auth(
    directory: Annotated[Path, typer.Argument(help="Where to write passwd, acl and credentials")],
    devices: Annotated[int, typer.Option(help="Devices of the simulated fleet")] = 20,
    replace: Annotated[bool, typer.Option(help="Write new passwords even if files exist")] = False,
) -> None:
    """Write a Mosquitto password file and ACL (and the plain credentials the bridge and the
    simulated devices log in with) for the bridge and a fleet of devices."""
    from twin_stream.mqtt_auth import generate_accounts, write_auth_files

    if (directory / "passwd").exists() and not replace:
        typer.echo(f"{directory}: credentials exist, kept (--replace to renew them)")
        return
    accounts = generate_accounts(fleet_device(i)[0] for i in range(1, devices + 1))
    for path in write_auth_files(directory, accounts).values():
        typer.echo(path)
