"""What every command group shares: the consoles, the progress bar, the one error line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from twin_stream.errors import TwinStreamError

__all__ = ["DirOption", "JsonOption", "console", "fail", "progress_bar"]

#: Progress, status and errors go to stderr, so --json output on stdout stays parseable.
console = Console(stderr=True)

DirOption = Annotated[
    Path | None, typer.Option("--dir", help="Stack root (default: $TWIN_STACK__DIR)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def fail(error: TwinStreamError) -> typer.Exit:
    """Print ``error`` as one line on stderr; the caller raises the returned exit (code 1)."""
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr; yields the function that reports the fraction done."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=1.0)
        yield lambda fraction: bar.update(task, completed=fraction)
