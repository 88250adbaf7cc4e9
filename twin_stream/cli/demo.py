"""``twin-stream demo``: the main job (``make demo``)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli._common import one_line_errors


@one_line_errors
def demo(
    devices: Annotated[int, typer.Option(help="Simulated devices")] = 20,
    fault_fraction: Annotated[float, typer.Option(help="Share of devices with a fault")] = 0.2,
    duration: Annotated[float, typer.Option(help="Seconds to run the fleet")] = 180.0,
    speed: Annotated[float, typer.Option(help="Simulated clock speed-up")] = 120.0,
    rate: Annotated[float, typer.Option(help="Readings per second per device")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the fleet and its faults")] = 7,
    report: Annotated[Path, typer.Option(help="HTML report to write")] = Path("demo-report.html"),
    workdir: Annotated[Path, typer.Option(help="Data and logs of the run")] = Path(
        ".twin-stream/demo"
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final figures as JSON")
    ] = False,
) -> None:
    """Start the local stack, the bridge, a worker and the sink, run a simulated fleet with
    faults through them while showing what the platform sees, then write an HTML report."""
    from twin_stream.devtools.demo.run import DemoOptions, run_demo

    if not 0.0 <= fault_fraction <= 1.0:
        raise typer.BadParameter("--fault-fraction must be within [0, 1]")
    if devices < 1 or duration <= 0 or speed <= 0 or rate <= 0:
        raise typer.BadParameter("--devices, --duration, --speed and --rate must be positive")
    options = DemoOptions(
        devices=devices,
        fault_fraction=fault_fraction,
        duration_s=duration,
        speed=speed,
        rate_hz=rate,
        report=report,
        seed=seed,
        workdir=workdir,
    )
    # With --json, the live view goes to stderr and stdout carries only the JSON.
    stream = sys.stderr if as_json else sys.stdout
    console = Console(stderr=as_json, width=None if stream.isatty() else 140)
    # SIGTERM (a service manager, `timeout`) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        summary = run_demo(options, console)
    except KeyboardInterrupt:
        console.print("[yellow]stopped; every process was shut down")
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table("figure", "value", title="twin-stream demo")
    for key in (
        "faulty_devices",
        "alerted_devices",
        "precision",
        "recall",
        "msgs_per_s",
        "p50_ms",
        "p99_ms",
        "report",
    ):
        value = summary[key]
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    console.print(table)
