"""What every service of the local stack shares: prepare, start, wait until ready, describe.

Each service runs as a local process on a free loopback port with its own data directory under
the stack's root, through the harness (:class:`~twin_stream.devtools.stack.harness.ManagedProcess`:
its own process group, a failure to get ready shows the tail of its log).
"""

from __future__ import annotations

import logging
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from twin_stream.devtools.stack.harness import ManagedProcess
from twin_stream.devtools.stack.probes import free_port
from twin_stream.devtools.stack.state import ServiceInfo
from twin_stream.errors import ServiceBinaryMissing

__all__ = ["Service"]

log = logging.getLogger(__name__)


class Service(ABC):
    """One local server process: how to prepare its files, start it and tell it is ready."""

    name: ClassVar[str]
    binary: ClassVar[str]
    debian_package: ClassVar[str]

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / f"{self.name}.log"
        self.process: ManagedProcess | None = None

    def executable(self) -> str:
        found = shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin:/sbin")
        if found is None:
            hint = f"install the Debian package '{self.debian_package}' (make system-deps)"
            raise ServiceBinaryMissing(self.name, self.binary, hint)
        return found

    @abstractmethod
    def command(self) -> list[str]:
        """Write config files under data_dir and return the argv that runs the server."""

    @abstractmethod
    def is_ready(self) -> bool:
        """One cheap probe: True once the server does real work."""

    @property
    @abstractmethod
    def url(self) -> str: ...

    def ports(self) -> list[int]:
        return [self.port]

    def extra(self) -> dict[str, Any]:
        return {}

    def environment(self) -> dict[str, str]:
        """Variables set for the server process, on top of ours."""
        return {}

    def start(self, *, tie_to_parent: bool) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = self.command()
        log.info("starting %s on port %d: %s", self.name, self.port, " ".join(argv))
        self.process = ManagedProcess(
            self.name,
            argv,
            self.log_path,
            env=self.environment(),
            cwd=self.data_dir,
            ready=self.is_ready,
            tie_to_parent=tie_to_parent,
        ).start()

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        self.process.wait_ready(deadline=deadline)

    def info(self) -> ServiceInfo:
        assert self.process is not None
        return ServiceInfo(
            name=self.name,
            pid=self.process.pid,
            port=self.port,
            url=self.url,
            data_dir=str(self.data_dir),
            log_path=str(self.log_path),
            ports=self.ports(),
            extra=self.extra(),
        )
