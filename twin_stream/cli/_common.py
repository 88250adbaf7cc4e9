"""What every command group shares: the consoles, the progress bar, the one error line."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from twin_stream.errors import TwinStreamError

__all__ = ["DirOption", "JsonOption", "console", "fail", "one_line_errors", "progress_bar"]

P = ParamSpec("P")
R = TypeVar("R")

#: Progress, status and errors go to stderr, so --json output on stdout stays parseable.
console = Console(stderr=True)

DirOption = Annotated[
    Path | None, typer.Option("--dir", help="Stack root (default: $TWIN_STACK__DIR)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def fail(error: TwinStreamError) -> typer.Exit:
    """Print ``error`` as one line on stderr; the caller raises the returned exit (code 1)."""
    console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
    return typer.Exit(code=1)


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so that a :class:`TwinStreamError` ends it with one line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TwinStreamError as e:
            raise fail(e) from e

    return wrapper


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
