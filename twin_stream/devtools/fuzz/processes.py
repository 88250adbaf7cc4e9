"""The services a run watches: a ``twin-stream`` service (the bridge, a worker) run as a
process through the stack's harness, whether it crashed (died, exited with an error, or wrote a
traceback in its log), and waiting while they live."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.harness import ManagedProcess, Probe

__all__ = ["Watched", "wait", "watched"]


@dataclass
class Watched:
    """A ``twin-stream`` service run as a process, and whether it crashed."""

    process: ManagedProcess
    alive_at_end: bool | None = None  # running when the run ended (before it was stopped)
    exit_code: int | None = None  # once stopped (SIGTERM)

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def log(self) -> Path:
        return self.process.log

    def alive(self) -> bool:
        return self.process.alive()

    def tracebacks(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("Traceback (most recent call last)")
        except FileNotFoundError:
            return 0

    def crashes(self) -> list[str]:
        """What went wrong with it: empty if nothing did."""
        found = []
        if self.alive_at_end is False:
            code = self.process.exit_code
            found.append(f"{self.name} died during the run (exit code {code})")
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
def watched(
    name: str, args: list[str], env: dict[str, str], log: Path, *, ready: Probe | None = None
) -> Iterator[Watched]:
    """``twin-stream ARGS`` as a process while the block runs (ready when ``ready`` says so,
    see :meth:`~twin_stream.devtools.stack.harness.ManagedProcess.wait_ready`); stopped
    (SIGTERM) after it, with whether it was alive until then and how it exited recorded."""
    with ManagedProcess.twin_stream(name, args, log, env=env, ready=ready) as process:
        service = Watched(process)
        try:
            yield service
        finally:
            service.alive_at_end = service.alive()
    service.exit_code = process.exit_code


def wait(done: Callable[[], bool], timeout: float, services: Sequence[Watched] = ()) -> bool:
    """Until ``done()``, ``timeout`` seconds or one of ``services`` died; whether it is done."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline or not all(s.alive() for s in services):
            return done()
        time.sleep(0.05)
    return True
