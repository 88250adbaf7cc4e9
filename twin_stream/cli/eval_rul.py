"""``twin-stream eval rul`` and ``eval cmapss-csv``: remaining useful life learned from the fleet's
failures, measured on histories (:mod:`twin_stream.devtools.evaluation.rul`).

The commands join the ``eval`` group through :func:`register` (``register(eval_app)``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli._common import JsonOption, one_line_errors, progress_bar
from twin_stream.devtools.evaluation.cmapss import convert_cmapss
from twin_stream.devtools.evaluation.rul import DEFAULT_CAP_H, DEFAULT_EARLY_H, evaluate_rul

__all__ = ["register"]


def rul(
    train: Annotated[
        Path, typer.Option(help="CSV of histories that end in a failure", exists=True)
    ],
    test: Annotated[Path, typer.Option(help="CSV of histories to predict", exists=True)],
    time_col: Annotated[
        str, typer.Option(help="Time column: ISO 8601 (naive = UTC) or epoch seconds")
    ] = "ts",
    device_col: Annotated[str, typer.Option(help="Device column")] = "device_id",
    train_truth: Annotated[
        Path | None,
        typer.Option(
            help="Each TRAIN device's remaining life (h) after its last row (default: the "
            "last row is the failure); same format as --truth",
            exists=True,
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="True RUL (h) after each TEST device's last row: one number per line in "
            "device order, or a CSV device_id,rul_h",
            exists=True,
        ),
    ] = None,
    cap: Annotated[
        float, typer.Option(help="Cap of true and predicted RUL when scoring (0: none)")
    ] = DEFAULT_CAP_H,
    early_h: Annotated[
        float, typer.Option(help="A page with more than this many hours left is early")
    ] = DEFAULT_EARLY_H,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write predicted against true RUL per device (.png, .html, .svg)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Learn the fleet model from TRAIN's failures, replay TEST, and predict each TEST
    device's remaining useful life (hours) at its last row; score it with --truth."""
    with progress_bar(f"learning {train.name}, predicting {test.name}") as progress:
        result = evaluate_rul(
            train,
            test,
            time_col=time_col,
            device_col=device_col,
            train_truth=train_truth,
            truth=truth,
            cap=cap,
            early_h=early_h,
            progress=progress,
            plot=plot,
        )
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(
        "device",
        "RUL (h)",
        "interval (h)",
        "stage",
        title=f"{result['test_devices']} devices, fleet model of {result['failures_learned']} "
        "failures",
    )
    for name, p in result["predictions"].items():
        table.add_row(
            name,
            "-" if p is None else f"{p['rul_h']:.1f}",
            "-" if p is None else f"{p['low_h']:.1f} - {p['high_h']:.1f}",
            str(result["stages"][name]),
        )
    console = Console()
    console.print(table)
    if "score" in result:
        s = result["score"]
        console.print(
            f"RMSE {s['rmse_h']} h (cap {s['cap_h']:g}), NASA score {s['nasa_score']}, "
            f"{s['scored']} scored; paged {s['paged']} of {s['units']}, "
            f"{s['paged_early']} with more than {s['early_h']:g} h left; median lead "
            f"{s['median_lead_h']} h; records ending within {s['near_failure_h']:g} h of "
            f"failure: {s['near_failure_paged']} of {s['near_failure_units']} paged"
        )
    else:
        console.print(f"paged {result['paged']} of {result['test_devices']}")
    if "plot" in result:
        console.print(f"plot: {result['plot']}")


def cmapss_csv(
    data: Annotated[
        Path, typer.Option(help="Folder with test_FD003.txt and RUL_FD003.txt", exists=True)
    ],
    out: Annotated[Path, typer.Option(help="Output folder")],
    subset: Annotated[str, typer.Option(help="C-MAPSS subset")] = "FD003",
    as_json: JsonOption = False,
) -> None:
    """Write OUT/odd.csv, OUT/even.csv, OUT/odd-truth.csv, OUT/even-truth.csv from C-MAPSS
    (one cycle = one hour from 2000-01-01T00:00Z; devices engine-001...)."""
    result = convert_cmapss(data, out, subset)
    if as_json:
        typer.echo(json.dumps(result))
        return
    for half, figures in result.items():
        typer.echo(
            f"{half}: {figures['devices']} devices, {figures['rows']} rows -> {figures['csv']}, "
            f"{figures['truth']}"
        )


def register(eval_app: typer.Typer) -> None:
    """Add ``rul`` and ``cmapss-csv`` to the ``eval`` group."""
    eval_app.command("rul")(one_line_errors(rul))
    eval_app.command("cmapss-csv")(one_line_errors(cmapss_csv))
