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

TRACEBACK = "Traceback (most recent call last)"


def _last_line(block: str) -> str:
    """The exception line that ends a traceback: its first unindented line after the frames."""
    for line in block.splitlines()[1:]:
        if line and not line.startswith(" "):
            return line.strip()
    return ""


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
        """Tracebacks in its log, but for kafka-python's known race at close (counted apart:
        :meth:`library_close_races`)."""
        return len(self._tracebacks()[0])

    def library_close_races(self) -> int:
        """Tracebacks of kafka-python 3.0's race at a consumer's close: ``KafkaConsumer.close``
        closes its connections from the caller's thread (``kafka/net/compat.py``: the manager's
        connections, then the IO loop) while the IO thread may be reading one, which then
        finds its socket gone and logs ``Error receiving network data`` with an
        ``AttributeError``. Nothing is lost (the consumer is closing; its offsets were
        committed before): reported in the run's summary, not as a crash of ours."""
        return len(self._tracebacks()[1])

    def _tracebacks(self) -> tuple[list[str], list[str]]:
        """(ours, kafka-python's close races): each traceback in the log, with the line that
        logged it."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return [], []
        ours: list[str] = []
        races: list[str] = []
        blocks = text.split(TRACEBACK)
        for before, block in zip(blocks, blocks[1:], strict=False):
            said = before.rstrip("\n").rsplit("\n", 1)[-1]
            is_race = (
                "Error receiving network data" in said
                and "kafka/net/transport.py" in block
                and _last_line(block) == "AttributeError: 'NoneType' object has no attribute 'recv'"
            )
            (races if is_race else ours).append(block)
        return ours, races

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
            "library_close_races": self.library_close_races(),
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
