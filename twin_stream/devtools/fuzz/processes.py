"""The services a run watches: a ``twin-stream`` service (the bridge, a worker) run as a
process, whether it crashed (died, exited with an error, or wrote a traceback in its log), and
waiting while they live."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.probes import http_get
from twin_stream.devtools.stack.processes import log_tail, subcommand
from twin_stream.errors import ServiceError

__all__ = ["Watched", "wait", "wait_ready", "watched"]


@dataclass
class Watched:
    """A ``twin-stream`` service run as a process, and whether it crashed."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    alive_at_end: bool | None = None  # running when the run ended (before it was stopped)
    exit_code: int | None = None  # once stopped (SIGTERM)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tracebacks(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("Traceback (most recent call last)")
        except FileNotFoundError:
            return 0

    def crashes(self) -> list[str]:
        """What went wrong with it: empty if nothing did."""
        found = []
        if self.alive_at_end is False:
            found.append(f"{self.name} died during the run (exit code {self.proc.returncode})")
        elif self.exit_code not in (None, 0):
            found.append(f"{self.name} exited with {self.exit_code} when stopped")
        if self.tracebacks():
            found.append(f"{self.name} logged {self.tracebacks()} traceback(s) in {self.log}")
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "alive_at_end": self.alive_at_end,
            "exit_code": self.exit_code,
            "tracebacks": self.tracebacks(),
            "log": str(self.log),
        }


@contextmanager
def watched(name: str, args: list[str], env: dict[str, str], log: Path) -> Iterator[Watched]:
    """``twin-stream ARGS`` as a process while the block runs; stopped (SIGTERM) after it, with
    whether it was alive until then and how it exited recorded."""
    with subcommand(args, env, log) as proc:
        service = Watched(name, proc, log)
        try:
            yield service
        finally:
            service.alive_at_end = service.alive()
    service.exit_code = proc.returncode


def wait(done: Callable[[], bool], timeout: float, services: Sequence[Watched] = ()) -> bool:
    """Until ``done()``, ``timeout`` seconds or one of ``services`` died; whether it is done."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline or not all(s.alive() for s in services):
            return done()
        time.sleep(0.05)
    return True


def wait_ready(port: int, service: Watched, timeout: float = 180.0) -> None:
    """Until the worker's ``GET /ready`` answers 200: partitions assigned, streams running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise ServiceError(service.name, f"exited while starting: {log_tail(service.log)}")
        try:
            if http_get(f"http://127.0.0.1:{port}/ready")[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise ServiceError(service.name, f"not ready within {timeout:g} s: {log_tail(service.log)}")
