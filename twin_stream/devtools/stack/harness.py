"""One harness for every process the dev tools and the tests start: a server of the stack, a
``twin-stream`` service (the bridge, a worker, the sink), a broker a test runs on its own.

:class:`ManagedProcess` starts a command in its own process group, its output appended to a log
file, tied to this process (``PR_SET_PDEATHSIG``: a killed test run or demo leaves nothing
behind); waits until a probe says it is ready (:func:`answers`: a URL answers 200;
:func:`listens`: a port accepts connections; or any cheap question); stops it (SIGTERM to the
group, SIGKILL after a grace period) or kills it (SIGKILL at once), reaping it either way; and
can be started again on the same log. A process that exits while it is waited on, or that is
not ready in time, raises :class:`~twin_stream.errors.ServiceNotReady`; one found dead when it
is needed (:meth:`ManagedProcess.check`) raises :class:`~twin_stream.errors.ServiceExited`:
both end with the last lines of its log.

Why not mirakuru (``ClearcodeHQ/mirakuru``, the executors under pytest-postgresql), which does
the start-and-wait part: its executors make their own process group with ``os.setsid`` as the
child's ``preexec_fn``, so a child cannot also be tied to its parent, which every test session
here relies on; it reads the child's output through a pipe where ours goes to a log file that
outlives it (and is appended to across the restarts of a chaos run); its readiness is one URL or
one port, where ours is also an MQTT login, two Kafka listeners and a broker's metadata, or an
authenticated request; and it would add two dependencies (mirakuru, psutil) to what remains
a thin layer over :mod:`subprocess`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType

from twin_stream.devtools.stack.probes import http_get, port_is_open
from twin_stream.devtools.stack.processes import die_with_parent, log_tail
from twin_stream.errors import ServiceError, ServiceExited, ServiceNotReady

__all__ = [
    "ManagedProcess",
    "Probe",
    "all_of",
    "answers",
    "listens",
    "stop_all",
    "twin_stream_argv",
]

log = logging.getLogger(__name__)

#: One cheap question asked of a starting process: True once it does real work. It may raise
#: until then (a refused connection, say): the last error is reported if it never gets ready.
Probe = Callable[[], bool]


def answers(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> Probe:
    """A probe: ``GET url`` (with ``headers``) answers 200 (no connection yet raises)."""
    return lambda: http_get(url, timeout=timeout, headers=headers)[0] == 200


def all_of(*probes: Probe) -> Probe:
    """A probe: every one of ``probes`` says ready (asked in turn, until one does not)."""
    return lambda: all(probe() for probe in probes)


def listens(port: int, host: str = "127.0.0.1") -> Probe:
    """A probe: something accepts TCP connections on ``host:port``."""
    return partial(port_is_open, port, host)


def stop_all(processes: Iterable[ManagedProcess], grace_s: float = 30.0) -> None:
    """Stop every one of ``processes`` at once: SIGTERM to each, then wait for each, SIGKILL for
    those still running ``grace_s`` after (so that two workers shut down side by side)."""
    started = [p for p in processes if p.process is not None]
    for process in started:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in started:
        process.reap(max(0.0, deadline - time.monotonic()))


def twin_stream_argv(args: Sequence[str]) -> list[str]:
    """The argv of ``twin-stream ARGS`` run by this interpreter (``python -m twin_stream``)."""
    return [sys.executable, "-m", "twin_stream", *args]


class ManagedProcess:
    """One process: started in its own process group with its output in ``log``, waited on
    until ``ready`` says so, stopped or killed, and started again if need be.

    ``env`` is added to this process's environment; ``marker``, if given, heads each start in
    the log (``--- MARKER: NAME started at T``), so that one log tells a restarted process's
    whole run; ``stdin``, if given, is a file read as its standard input (each start reads it
    from the beginning; otherwise it reads nothing). As a context manager it starts on entry
    and stops on exit.

    >>> import tempfile
    >>> log = Path(tempfile.mkdtemp()) / "echo.log"
    >>> with ManagedProcess("echo", ["echo", "hello"], log) as echo:
    ...     echo.wait(10)
    0
    >>> echo.tail()
    'hello'
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready: Probe | None = None,
        tie_to_parent: bool = True,
        marker: str | None = None,
        stdin: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(env or {})
        self.cwd = cwd
        self.ready = ready
        self.tie_to_parent = tie_to_parent
        self.marker = marker
        self.stdin = stdin
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def twin_stream(
        cls,
        name: str,
        args: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        ready: Probe | None = None,
        marker: str | None = None,
    ) -> ManagedProcess:
        """``twin-stream ARGS`` (the bridge, a worker, the sink...) as a managed process."""
        return cls(name, twin_stream_argv(args), log, env=env, ready=ready, marker=marker)

    # -- life ------------------------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        """Start it (again, once it has exited: same argv, same log); returns itself."""
        if self.alive():
            raise ServiceError(self.name, f"already running (pid {self.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        log.debug("starting %s: %s", self.name, " ".join(self.argv))
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(self.log, "ab"))
            source = files.enter_context(open(self.stdin, "rb")) if self.stdin is not None else None
            if self.marker is not None:
                out.write(
                    f"\n--- {self.marker}: {self.name} started at {time.time():.3f}\n".encode()
                )
                out.flush()
            # The child gets its own copies of the descriptors; ours close with this block.
            self.process = subprocess.Popen(
                self.argv,
                stdin=source if source is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: we stop it and its children
                preexec_fn=die_with_parent if self.tie_to_parent else None,
            )
        return self

    def wait_ready(
        self,
        timeout: float = 180.0,
        *,
        deadline: float | None = None,
        until: Probe | None = None,
        interval: float = 0.2,
    ) -> None:
        """Until ``until`` (by default its own ``ready`` probe) says it is ready, for ``timeout``
        seconds or until ``deadline`` (``time.monotonic()``); raises
        :class:`~twin_stream.errors.ServiceNotReady`, with the end of its log, if it exits
        first or is not ready in time."""
        probe = until or self.ready
        if probe is None:
            raise ServiceError(self.name, "has no readiness probe to wait on")
        end = deadline if deadline is not None else time.monotonic() + timeout
        last = "no probe answered yet"
        while True:
            code = self._popen().poll()
            if code is not None:
                raise ServiceNotReady(self.name, f"exited with code {code}", self.tail())
            try:
                if probe():
                    return
                last = "it answered, not ready"
            except Exception as e:  # expected until it is up: the last one is reported
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() >= end:
                raise ServiceNotReady(
                    self.name, f"not ready in time (last probe: {last})", self.tail()
                )
            time.sleep(interval)

    def stop(self, grace_s: float = 30.0, *, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """``sig`` to its process group, then SIGKILL after ``grace_s``; reaps it either way.
        Its exit code (None if it was never started)."""
        if self.process is None:
            return None
        self.terminate(sig)
        return self.reap(grace_s)

    def terminate(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """``sig`` to its process group if it runs, without waiting (see :meth:`reap`)."""
        if self.alive():
            self._signal_group(sig)

    def reap(self, grace_s: float) -> int:
        """Its exit code, once it exits: after :meth:`terminate`, SIGKILL to its group if it
        still runs ``grace_s`` later."""
        try:
            return self._popen().wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s still running %g s after it was asked to stop: SIGKILL", self.name, grace_s
            )
            self._signal_group(signal.SIGKILL)
            return self._reap_killed()

    def kill(self) -> int:
        """SIGKILL its whole process group: no goodbye, no last commit, no flush."""
        self._popen()
        self._signal_group(signal.SIGKILL)
        return self._reap_killed()

    def wait(self, timeout: float | None = None) -> int:
        """Until it exits by itself (``subprocess.TimeoutExpired`` after ``timeout``)."""
        return self._popen().wait(timeout)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it is doing ------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """Its pid (of its last start; it may have exited since)."""
        return self._popen().pid

    @property
    def exit_code(self) -> int | None:
        """Its exit code once it has exited (a negative signal number if a signal ended it),
        None while it runs or before it started."""
        return self.process.poll() if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> None:
        """Raise :class:`~twin_stream.errors.ServiceExited`, with the end of its log, unless it
        is running."""
        code = self._popen().poll()
        if code is not None:
            raise ServiceExited(self.name, code, self.tail())

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of its log."""
        return log_tail(self.log, lines)

    # -- internals -------------------------------------------------------------------------------

    def _popen(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise ServiceError(self.name, "not started")
        return self.process

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # the whole group exited meanwhile
            os.killpg(self._popen().pid, sig)

    def _reap_killed(self) -> int:
        try:
            return self._popen().wait(10)
        except subprocess.TimeoutExpired as e:
            raise ServiceError(self.name, f"pid {self.pid} still running after SIGKILL") from e
