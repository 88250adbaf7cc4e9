"""What every service of the local stack shares: prepare, start, wait until ready, describe.

Each service runs as a local process on a free loopback port with its own data directory under
the stack's root and its own process group; a failure to get ready shows the tail of its log.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from twin_stream.devtools.stack.probes import free_port
from twin_stream.devtools.stack.processes import die_with_parent, log_tail
from twin_stream.devtools.stack.state import ServiceInfo
from twin_stream.errors import ServiceBinaryMissing, ServiceNotReady

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
        self.process: subprocess.Popen[bytes] | None = None

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
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env={**os.environ, **self.environment()},
                start_new_session=True,  # its own process group: we stop it and its children
                preexec_fn=die_with_parent if tie_to_parent else None,
            )

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        last_error = "no probe answered yet"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServiceNotReady(
                    self.name, f"exited with code {code}", log_tail(self.log_path)
                )
            try:
                if self.is_ready():
                    return
            except Exception as e:  # a probe failing is expected until the server is up
                last_error = f"{type(e).__name__}: {e}"
            time.sleep(0.2)
        raise ServiceNotReady(
            self.name, f"not ready in time (last probe: {last_error})", log_tail(self.log_path)
        )

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
