"""``twin-stream eval``: measure the detectors on NAB, SKAB and the simulated fleet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli_simulate import progress_bar
from twin_stream.evaluation.fleet import evaluate_fleet
from twin_stream.evaluation.nab import evaluate_nab
from twin_stream.evaluation.skab import evaluate_skab

eval_app = typer.Typer(
    help="Evaluate the detectors (one parameter set for everything).", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _print(title: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("figure", "value", title=title)
    for key, value in result.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    Console().print(table)


@eval_app.command("nab")
def nab(
    data: Annotated[Path, typer.Option(help="NAB data folder (category/file.csv)")],
    labels: Annotated[Path, typer.Option(help="NAB combined_windows.json")],
    out: Annotated[Path, typer.Option(help="Where to write NAB results files")],
    as_json: JsonOption = False,
) -> None:
    """Normalised NAB scores (standard, reward_low_FP_rate, reward_low_FN_rate)."""
    with progress_bar("NAB files") as bar:
        result = evaluate_nab(
            data, labels, out, progress=lambda f: bar.update(bar.task_ids[0], completed=f)
        )
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("profile", "score", "threshold", "windows", title=f"NAB, {result['files']} files")
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        r = result[profile]
        table.add_row(profile, f"{r['score']:.1f}", f"{r['threshold']:.6g}", str(r["windows"]))
    Console().print(table)


@eval_app.command("skab")
def skab(
    data: Annotated[
        Path, typer.Option(help="Folder of SKAB-format CSV files, searched recursively")
    ],
    as_json: JsonOption = False,
) -> None:
    """SKAB's F1, false alarm rate and missed alarm rate (%), pooled over every file.

    Files in an anomaly-free folder or named anomaly-free are left out. Per file, a fresh
    device of type "skab" sees every row; the first 400 rows train it, the rest are
    scored: a row is an alarm while an anomaly alert is open.
    """
    with progress_bar("SKAB files") as bar:
        result = evaluate_skab(data, progress=lambda f: bar.update(bar.task_ids[0], completed=f))
    _print(f"SKAB, {result['files']} files", result, as_json)


@eval_app.command("fleet")
def fleet(
    devices: Annotated[int, typer.Option(help="Simulated devices")] = 50,
    hours: Annotated[float, typer.Option(help="Simulated hours")] = 48.0,
    seed: Annotated[int, typer.Option(help="Fleet seed")] = 1,
    fault_fraction: Annotated[float, typer.Option(help="Share of faulty devices")] = 0.3,
    interval: Annotated[float, typer.Option(help="Seconds between readings")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Precision, recall, lead time and false alerts against the simulator's ground truth."""
    with progress_bar(f"{devices} devices x {hours:g} h") as bar:
        result = evaluate_fleet(
            devices,
            hours,
            seed,
            fault_fraction=fault_fraction,
            interval_s=interval,
            progress=lambda f: bar.update(bar.task_ids[0], completed=f),
        )
    _print("simulated fleet", result, as_json)
