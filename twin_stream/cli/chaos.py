"""``twin-stream chaos``: faults injected into the running platform under a steady load, every
reading counted (figures in RELIABILITY.md)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from twin_stream.cli._common import JsonOption, console, one_line_errors
from twin_stream.errors import ConfigError


def _table(figures: dict[str, Any]) -> Table:
    load = figures["load"]
    table = Table(
        "fault",
        "published",
        "scored",
        "stored",
        "lost",
        "duplicates",
        "dup. scores",
        "dup. alerts",
        "orphaned",
        "recovery (s)",
        "stored again (s)",
        title=f"twin-stream chaos: {load['devices']} devices, {load['rate']:g} msgs/s",
    )

    def shown(value: Any) -> str:
        return "-" if value is None else str(value)

    for row in figures["faults"]:
        table.add_row(
            row["fault"],
            *(
                shown(row[key])
                for key in (
                    "published",
                    "scored",
                    "stored",
                    "lost",
                    "duplicates",
                    "duplicate_scores",
                    "duplicate_alerts",
                    "orphaned_alerts",
                    "recovery_s",
                    "stored_recovery_s",
                )
            ),
        )
    return table


@one_line_errors
def chaos(
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            help="Comma-separated, run in this order: bridge-kill, worker-kill, sink-kill, "
            "kafka-outage, mosquitto-restart, tsdb-outage (default: all)",
        ),
    ] = None,
    devices: Annotated[int, typer.Option(help="Simulated devices (one MQTT client each)")] = 50,
    rate: Annotated[float, typer.Option(help="Readings/s of the whole fleet")] = 200.0,
    outage: Annotated[float, typer.Option(help="Seconds Kafka and InfluxDB stay down")] = 30.0,
    settle: Annotated[float, typer.Option(help="Seconds of steady load before each fault")] = 20.0,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Where the run's stack and logs go (default .twin-stream/chaos/run-TIME)"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Kill and restart each part of the platform in turn under a steady simulated load; count
    every reading published, scored and stored, the duplicates, the alerts duplicated or
    orphaned, and how long scoring took to resume."""
    from twin_stream.devtools.chaos import ChaosOptions, FaultTiming, fault_names, run_chaos

    try:
        names = fault_names(faults)
    except ValueError as e:
        raise ConfigError(f"--faults: {e}") from e
    if devices < 1 or rate <= 0:
        raise ConfigError("--devices must be at least 1 and --rate above 0")
    options = ChaosOptions(
        faults=tuple(names),
        devices=devices,
        rate=rate,
        timing=FaultTiming(outage_s=outage),
        settle_s=settle,
        workdir=workdir or Path(".twin-stream/chaos") / time.strftime("run-%Y%m%d-%H%M%S"),
    )
    # Every Kafka client of this process logs each failed reconnect during a Kafka outage: the
    # run reports the outage itself.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    with console.status("starting") as status:
        figures = run_chaos(
            options,
            say=lambda text: status.update(escape(text)),
            log=lambda text: console.print(text, soft_wrap=True, highlight=False),
        )
    console.print(f"logs: {figures['logs']}", soft_wrap=True, highlight=False)
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        Console().print(_table(figures))
