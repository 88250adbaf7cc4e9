"""Process control below the harness (:mod:`twin_stream.devtools.stack.harness`), by pid.

Processes started for a test session are tied to their parent (``PR_SET_PDEATHSIG``, see
:func:`die_with_parent`), so a killed test run cannot leave a broker behind. Each process gets its
own process group, which :func:`stop_process_group` stops by the pid a state file recorded
(SIGTERM, then SIGKILL after a grace period: ``stack down`` from another command), so nothing is
left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

from twin_stream.errors import ServiceError

__all__ = ["die_with_parent", "log_tail", "pid_alive", "stop_process_group"]


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child when the process that started it dies."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a service's log, or why there are none."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which has exited, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # Field 3 is the state; a zombie has exited and only waits to be reaped.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_process_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if not pid_alive(pid):
                return
            time.sleep(0.1)
    raise ServiceError(f"pid {pid}", "still running after SIGKILL")
