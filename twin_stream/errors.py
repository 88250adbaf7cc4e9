"""The exception tree of twin-stream.

Every error the package raises on purpose derives from :class:`TwinStreamError`::

    TwinStreamError
    ├── ConfigError                 settings that cannot work
    ├── ServiceError                a local service of the stack
    │   ├── ServiceBinaryMissing    its program is not installed
    │   ├── ServiceNotReady         it did not become ready in time (carries its log tail)
    │   └── ServiceExited           its process exited while it was needed (code, log tail)
    ├── KafkaError                  Kafka refused or failed a request (topics, produce, consume)
    │   └── KafkaUnavailable        no broker answered in time (down, unreachable, retriable)
    ├── MqttError                   the MQTT broker was unreachable or refused the login
    ├── StoreError                  InfluxDB was unreachable or refused a write or a query
    ├── GrafanaError                Grafana's HTTP API was unreachable or refused a request
    ├── StateError                  saved per-device state (detector, alert policy) unreadable
    │   ├── StateVersionMismatch    it was saved by another detector, River or policy version
    │   └── StateSignatureInvalid   its model state's HMAC does not match (not ours: never loaded)
    ├── PayloadRejected             a message, topic or device id against the protocol (DLQ data)
    │   └── CommandRefused          a desired-state change refused (bounds, If-Match, type)
    ├── CredentialsError            an API token or a device account: unknown, taken, unreadable
    └── DatasetError                an input file (benchmark data, a CSV history) unreadable

A library's exception is translated where the library is called, with :func:`map_exceptions`
(as httpx maps httpcore's): Kafka in :mod:`twin_stream.kafka`, MQTT in
:mod:`twin_stream.bridge.uplink`, InfluxDB in :mod:`twin_stream.sink.writer`, Grafana in
:mod:`twin_stream.grafana.push`, River and pickle in the detector's and the monitor's
``loads``. The original stays as ``__cause__``. The CLI catches :class:`TwinStreamError` alone.

A bad message is data for the dead-letter topic, not an exception that kills a consumer:
:class:`PayloadRejected` is raised by validation and caught at the adapter edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = [
    "CommandRefused",
    "ConfigError",
    "CredentialsError",
    "DatasetError",
    "GrafanaError",
    "KafkaError",
    "KafkaUnavailable",
    "MqttError",
    "PayloadRejected",
    "ServiceBinaryMissing",
    "ServiceError",
    "ServiceExited",
    "ServiceNotReady",
    "StateError",
    "StateSignatureInvalid",
    "StateVersionMismatch",
    "StoreError",
    "UNREADABLE_DATASET",
    "TwinStreamError",
    "map_exceptions",
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


class ServiceExited(ServiceError):
    """A service's process exited while it was needed; the message ends with its log tail."""

    def __init__(self, service: str, exit_code: int, log_tail: str) -> None:
        super().__init__(
            service, f"exited with code {exit_code}\n--- last lines of its log ---\n{log_tail}"
        )
        self.exit_code = exit_code
        self.log_tail = log_tail


class KafkaError(TwinStreamError):
    """Kafka refused or failed a request: creating topics, producing, consuming, committing."""


class KafkaUnavailable(KafkaError):
    """No Kafka broker answered in time (not running, unreachable, or a retriable error)."""


class MqttError(TwinStreamError):
    """The MQTT broker could not be reached, or refused the login."""


class StoreError(TwinStreamError):
    """InfluxDB could not be reached, or refused a write or a query."""


class GrafanaError(TwinStreamError):
    """Grafana's HTTP API could not be reached, or refused a request."""


class StateError(TwinStreamError):
    """Saved per-device state (detector, alert policy) that cannot be restored."""


class StateVersionMismatch(StateError):
    """Saved state from another detector, River or alert policy version (pickles do not cross)."""


class StateSignatureInvalid(StateError):
    """Saved model state whose signature does not match this key: refused before unpickling."""


class PayloadRejected(TwinStreamError):
    """A message that breaks the wire protocol; ``reason`` names the field and the rule."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class CommandRefused(PayloadRejected):
    """A desired-state change the platform refuses; ``status`` is the twin API's answer."""

    # 412: made against another twin version than the current ``version``; 409: the device's
    # type, and so its settings' ranges, not known yet; 422: a setting out of the type's range
    # or one it does not have (``details``, one per setting).
    def __init__(
        self,
        reason: str,
        *,
        status: int,
        field: str | None = None,
        details: list[dict[str, object]] | None = None,
        version: int | None = None,
    ) -> None:
        super().__init__(reason, field=field)
        self.status = status
        self.details = details or []
        self.version = version


class CredentialsError(TwinStreamError):
    """An API token or device account missing, already there, or in an unreadable store."""


class DatasetError(TwinStreamError):
    """An input file the evaluations read (benchmark data, a CSV history) is unreadable."""


#: What reading a dataset can raise, for :func:`map_exceptions` (it is also a decorator).
UNREADABLE_DATASET: Mapping[type[BaseException], type[TwinStreamError]] = {
    OSError: DatasetError,
    UnicodeDecodeError: DatasetError,
    ValueError: DatasetError,
    KeyError: DatasetError,
}


@contextmanager
def map_exceptions(
    mapping: Mapping[type[BaseException], type[TwinStreamError]], context: str
) -> Iterator[None]:
    """Translate a library's exceptions raised inside the block into the tree.

    The first entry of ``mapping`` whose key the exception is an instance of wins (so list
    subclasses before their bases); it is raised as ``New(f"{context}: {message}")`` from the
    original, the message on one line. An exception no entry matches, and one of the tree
    itself (already translated), pass through unchanged. Each class mapped to is built from
    one message, as every class of the tree but the :class:`ServiceError` family is.

    >>> with map_exceptions({OSError: StoreError}, "influxdb http://db:8086"):
    ...     raise ConnectionRefusedError(111, "Connection refused")
    Traceback (most recent call last):
    ...
    twin_stream.errors.StoreError: influxdb http://db:8086: [Errno 111] Connection refused
    """
    try:
        yield
    except TwinStreamError:
        raise
    except BaseException as exc:
        for library_error, ours in mapping.items():
            if isinstance(exc, library_error):
                message = " ".join(str(exc).split()) or type(exc).__name__
                raise ours(f"{context}: {message}") from exc
        raise
