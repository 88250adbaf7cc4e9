"""The exception tree of twin-stream.

Every error the package raises on purpose derives from :class:`TwinStreamError`::

    TwinStreamError
    ├── ConfigError                 settings that cannot work
    ├── ServiceError                a local service of the stack
    │   ├── ServiceBinaryMissing    its program is not installed
    │   └── ServiceNotReady         it did not become ready in time (carries its log tail)
    └── PayloadRejected             a message that breaks the wire protocol (data for the DLQ)

A bad message is data for the dead-letter topic, not an exception that kills a consumer:
:class:`PayloadRejected` is raised by validation and caught at the adapter edge.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "PayloadRejected",
    "ServiceBinaryMissing",
    "ServiceError",
    "ServiceNotReady",
    "TwinStreamError",
]


class TwinStreamError(Exception):
    """Base class of every error twin-stream raises on purpose."""


class ConfigError(TwinStreamError):
    """Settings that cannot work together."""


class ServiceError(TwinStreamError):
    """A local service of the stack failed."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


class ServiceBinaryMissing(ServiceError):
    """The program a service needs is not installed."""

    def __init__(self, service: str, binary: str, install_hint: str) -> None:
        super().__init__(service, f"'{binary}' not found; {install_hint}")
        self.binary = binary
        self.install_hint = install_hint


class ServiceNotReady(ServiceError):
    """A service did not become ready in time; the message ends with its log tail."""

    def __init__(self, service: str, reason: str, log_tail: str) -> None:
        super().__init__(service, f"{reason}\n--- last lines of its log ---\n{log_tail}")
        self.reason = reason
        self.log_tail = log_tail


class PayloadRejected(TwinStreamError):
    """A message that breaks the wire protocol; ``reason`` names the field and the rule."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
