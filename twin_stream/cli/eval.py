"""``twin-stream eval``: measure production's per-device path on NAB, SKAB, the simulated fleet
and any CSV of historical readings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli._common import one_line_errors, progress_bar
from twin_stream.cli.eval_rul import register
from twin_stream.devtools.evaluation.fleet import evaluate_fleet
from twin_stream.devtools.evaluation.nab import evaluate_nab
from twin_stream.devtools.evaluation.replay import DEFAULT_TYPE, replay_csv
from twin_stream.devtools.evaluation.skab import evaluate_skab

eval_app = typer.Typer(
    help="Evaluate the detectors through DeviceMonitor, production's per-device path (one "
    "parameter set for everything).",
    no_args_is_help=True,
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
@one_line_errors
def nab(
    data: Annotated[Path, typer.Option(help="NAB data folder (category/file.csv)")],
    labels: Annotated[Path, typer.Option(help="NAB combined_windows.json")],
    out: Annotated[Path, typer.Option(help="Where to write NAB results files")],
    cv: Annotated[
        bool,
        typer.Option(
            "--cv",
            help="Also leave one category out: the threshold chosen on the other categories "
            "scores each held-out one",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Normalised NAB scores (standard, reward_low_FP_rate, reward_low_FN_rate).

    Each file is one fresh device of type "nab" with the single signal "value"; a row's
    anomaly_score is the monitor's score for it, unchanged.
    """
    with progress_bar("NAB files") as progress:
        result = evaluate_nab(data, labels, out, progress=progress, cv=cv)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(
        "profile",
        "score",
        "threshold",
        "windows",
        "cross-validated",
        title=f"NAB, {result['files']} files",
    )
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        r = result[profile]
        held = r.get("cross_validated")
        table.add_row(
            profile,
            f"{r['score']:.1f}",
            f"{r['threshold']:.6g}",
            str(r["windows"]),
            f"{held['score']:.1f}" if held else "-",
        )
    Console().print(table)


@eval_app.command("skab")
@one_line_errors
def skab(
    data: Annotated[
        Path, typer.Option(help="Folder of SKAB-format CSV files, searched recursively")
    ],
    cv: Annotated[
        bool,
        typer.Option(
            "--cv",
            help="Also split the files in two (each folder's first half, second half) and "
            "score each half on its own",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """SKAB's F1, false alarm rate and missed alarm rate (%), pooled over every file.

    Files in an anomaly-free folder or named anomaly-free are left out. Per file, a fresh
    device of type "skab" sees every row; the first 400 rows train it, the rest are
    scored: a row is an alarm while an anomaly alert is open. With --cv, each half of the
    files is also scored on its own (no parameter is chosen on SKAB files; each file's own
    first 400 rows are all it learns from).
    """
    with progress_bar("SKAB files") as progress:
        result = evaluate_skab(data, progress=progress, cv=cv)
    if as_json or "cross_validated" not in result:
        _print(f"SKAB, {result['files']} files", result, as_json)
        return
    held = result["cross_validated"]
    table = Table(
        "files", "F1", "FAR %", "MAR %", "test rows", title=f"SKAB, {result['files']} files"
    )
    table.add_row("all (in-sample)", *_skab_figures(result))
    for name, half in held["halves"].items():
        table.add_row(name, *_skab_figures(half))
    table.add_row("halves pooled", *_skab_figures(held))
    Console().print(table)
    Console().print(f"chosen on SKAB files: {held['fitted']['chosen_on_skab_files'] or 'nothing'}")


def _skab_figures(r: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        f"{r['f1']:.3f}",
        f"{r['far_percent']:.2f}",
        f"{r['mar_percent']:.2f}",
        str(r["test_rows"]),
    )


@eval_app.command("fleet")
@one_line_errors
def fleet(
    devices: Annotated[int, typer.Option(help="Simulated devices")] = 50,
    hours: Annotated[float, typer.Option(help="Simulated hours")] = 48.0,
    seed: Annotated[int, typer.Option(help="Fleet seed")] = 1,
    fault_fraction: Annotated[float, typer.Option(help="Share of faulty devices")] = 0.3,
    interval: Annotated[float, typer.Option(help="Seconds between readings")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Precision, recall, lead time and false alerts against the simulator's ground truth."""
    with progress_bar(f"{devices} devices x {hours:g} h") as progress:
        result = evaluate_fleet(
            devices,
            hours,
            seed,
            fault_fraction=fault_fraction,
            interval_s=interval,
            progress=progress,
        )
    _print("simulated fleet", result, as_json)


@eval_app.command("replay")
@one_line_errors
def replay(
    file: Annotated[Path, typer.Argument(help="CSV of historical readings", exists=True)],
    time_col: Annotated[
        str, typer.Option(help="Time column: ISO 8601 (naive = UTC) or epoch seconds")
    ] = "ts",
    device_col: Annotated[
        str, typer.Option(help="Device column; if absent, one device named after the file")
    ] = "device_id",
    device_type: Annotated[
        str, typer.Option("--type", help="Device type (unknown types have no failure limits)")
    ] = DEFAULT_TYPE,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: <file stem>-replay)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run DeviceMonitor over a CSV of readings; write OUT/scores.csv and OUT/alerts.jsonl.

    Signals are the numeric columns (a "seq" column is the sequence number); empty cells are
    missing values. Each device's rows are processed in file order.
    """
    target = out if out is not None else Path(f"{file.stem}-replay")
    with progress_bar(f"replaying {file.name}") as progress:
        result = replay_csv(
            file,
            target,
            time_col=time_col,
            device_col=device_col,
            device_type=device_type,
            progress=progress,
        )
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(
        "device",
        "rows",
        "alerts",
        "first alert",
        "max score",
        title=f"replay of {file.name}: {result['rows']} rows, {result['devices']} devices, "
        f"{result['alerts']} alerts",
    )
    for name, figures in result["per_device"].items():
        table.add_row(
            name,
            str(figures["rows"]),
            str(figures["alerts"]),
            result["first_alert_ts"][name] or "-",
            f"{figures['max_score']:.4f}",
        )
    console = Console()
    console.print(table)
    console.print(f"scores: {result['scores']}\nalerts: {result['alerts_file']}")


register(eval_app)  # eval rul, eval cmapss-csv
