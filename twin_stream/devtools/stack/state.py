"""The state file of a running stack (``<root>/state.json``), and what reads it.

``stack up`` records each service's pid, ports and URL there; :func:`status` reports on them and
:func:`stop` stops them (only processes that are still the ones we started) and removes the file.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.probes import port_is_open
from twin_stream.devtools.stack.processes import pid_alive, stop_process_group
from twin_stream.errors import ServiceError

__all__ = [
    "CREDENTIALS_FILE",
    "STATE_FILE",
    "ServiceInfo",
    "StackState",
    "is_ours",
    "status",
    "stop",
]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
CREDENTIALS_FILE = "mqtt-credentials.json"


@dataclass
class ServiceInfo:
    """Where a running service lives; what ``stack up`` records in the state file."""

    name: str
    pid: int
    port: int
    url: str
    data_dir: str
    log_path: str
    ports: list[int] = field(default_factory=list)  # every port it listens on
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackState:
    """Every service of a running stack; serialised to ``<root>/state.json``."""

    root: str
    services: dict[str, ServiceInfo]

    def url(self, name: str) -> str:
        return self.services[name].url

    def to_json(self) -> dict[str, Any]:
        return {"root": self.root, "services": {k: asdict(v) for k, v in self.services.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        services = {k: ServiceInfo(**v) for k, v in data["services"].items()}
        return cls(root=data["root"], services=services)


def status(state: StackState) -> dict[str, dict[str, Any]]:
    """For each service: its URL, pid, whether it runs and whether its port answers."""
    return {
        name: {
            "url": info.url,
            "pid": info.pid,
            "running": pid_alive(info.pid),
            "port_open": port_is_open(info.port),
            "log": info.log_path,
        }
        for name, info in state.services.items()
    }


def stop(state: StackState, *, timeout: float = 20.0) -> None:
    """Stop every service of ``state`` and remove its state file; raise if a port stays open."""
    # Stop in reverse start order: clients of a service go before it.
    for info in reversed(list(state.services.values())):
        if pid_alive(info.pid) and is_ours(info):
            log.info("stopping %s (pid %d)", info.name, info.pid)
            stop_process_group(info.pid, timeout=timeout)
    # Stopped processes' listening sockets go with them, but not always at the same instant
    # (a JVM's, say): give them a few seconds.
    deadline = time.monotonic() + 10.0
    while True:
        still_open = [
            f"{i.name}:{p}" for i in state.services.values() for p in i.ports if port_is_open(p)
        ]
        if not still_open or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if still_open:
        raise ServiceError("stack", f"ports still open after stop: {', '.join(still_open)}")
    with contextlib.suppress(FileNotFoundError):
        (Path(state.root) / STATE_FILE).unlink()


def is_ours(info: ServiceInfo) -> bool:
    """Guard against pid reuse: the process must still be the one we started."""
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return False
    return info.data_dir in cmdline
