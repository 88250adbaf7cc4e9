"""``twin-stream fuzz``: bad input at scale through the real bridge, on a local stack of its own
(:mod:`twin_stream.devtools.fuzz`). Needs the dev extras (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli._common import JsonOption, console, one_line_errors, progress_bar
from twin_stream.errors import ConfigError

__all__ = ["fuzz"]


@one_line_errors
def fuzz(
    count: Annotated[int, typer.Option(min=1, help="Bad payloads to send")] = 10_000,
    devices: Annotated[int, typer.Option(min=2, help="Devices publishing them")] = 10,
    rate: Annotated[
        float,
        typer.Option(min=1, help="Messages/s in all (each bad one is followed by a valid one)"),
    ] = 1000.0,
    seed: Annotated[
        int, typer.Option(help="Hypothesis seed: the same payloads for the same seed")
    ] = 0,
    worker: Annotated[
        bool, typer.Option(help="Run a worker behind the bridge too (checked for crashes)")
    ] = True,
    logs: Annotated[
        Path | None, typer.Option(help="Where the services' logs go [.twin-stream/fuzz/WHEN]")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send malformed, oversized, wrongly typed, NaN/infinite, future- or past-stamped and
    wrong-topic payloads, a valid reading after each, through the real bridge; count what
    became of each (dead-lettered, refused by the broker, lost) and whether anything crashed.
    Exits 1 unless every bad payload was dead-lettered or refused, every valid reading arrived
    and nothing crashed."""
    try:
        from twin_stream.devtools.fuzz import fuzz_stack
    except ModuleNotFoundError as e:  # hypothesis is a dev dependency
        raise ConfigError(
            f"twin-stream fuzz needs the dev extras ({e.name} is missing): pip install -e '.[dev]'"
        ) from e
    with progress_bar(f"fuzzing the bridge: {count:,} bad payloads") as progress:
        figures = fuzz_stack(
            count=count,
            devices=devices,
            rate=rate,
            seed=seed,
            worker=worker,
            logs=logs,
            progress=progress,
            say=lambda line: console.print(line, highlight=False),
        )
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        _show(figures)
    if not figures["passed"]:
        raise typer.Exit(code=1)


def _show(figures: dict[str, Any]) -> None:
    table = Table(
        "category",
        "sent",
        "dead-lettered",
        "refused by broker",
        "lost",
        "leaked",
        "wrong rule",
        title=f"twin-stream fuzz (seed {figures['seed']})",
    )
    rows = {**figures["categories"], "all bad payloads": figures["bad"]}
    for name, row in rows.items():
        table.add_row(
            name,
            *(
                f"{row[k]:,}"
                for k in ("sent", "dead_lettered", "refused", "lost", "leaked", "wrong_rule")
            ),
        )
    out = Console()
    out.print(table)
    valid = figures["valid"]
    out.print(
        f"valid readings: {valid['sent']:,} sent, {valid['arrived']:,} arrived as expected, "
        f"{valid['missing']} missing, {valid['duplicates']} duplicated, {valid['altered']} "
        f"altered, {valid['out_of_order']} out of order"
    )
    details = "".join(f" ({d})" for d in figures["crash_details"])
    out.print(
        f"crashes: {figures['crashes']}{details}; "
        f"{figures['messages_per_s']:,} msgs/s for {figures['publish_s']} s",
        highlight=False,
    )
    for kind, examples in figures["problems"].items():
        out.print(f"[red]{kind}[/]: {examples[0]}", highlight=False)
