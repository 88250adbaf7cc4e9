"""Run ``twin-stream`` subcommands as child processes (the demo and the benchmarks).

Each child gets its own process group and log file; leaving the ``with`` block stops it
(SIGTERM, then SIGKILL after a grace period), so nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twin_stream.devtools.stack import die_with_parent

__all__ = ["subcommand"]


@contextmanager
def subcommand(
    args: list[str], env: dict[str, str], log: Path, *, grace_s: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m twin_stream ARGS`` with ``env`` added, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twin_stream", *args],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # a killed parent leaves no orphan behind
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
