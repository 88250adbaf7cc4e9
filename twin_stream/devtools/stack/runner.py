"""The local stack: real Mosquitto, Apache Kafka and InfluxDB as local processes.

No Docker engine is needed. :class:`Stack` builds the chosen services under one root directory;
``up`` starts them all and waits until every service answers (bounded, and a failure shows the
tail of that service's log, and stops whatever was started); ``down`` stops them all. The state
file (``<root>/state.json``) records each service's pid, port and URL for ``status`` and ``down``.

Processes started for a test session are tied to their parent, so a killed test run cannot leave
a broker behind; ``twin-stream stack up`` detaches them on purpose and ``twin-stream stack down``
stops them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from twin_stream.devtools.stack.certs import TlsFiles
from twin_stream.devtools.stack.influxdb import INFLUX_DATABASE, InfluxDB
from twin_stream.devtools.stack.kafka import find_kafka_libs, kafka_cluster
from twin_stream.devtools.stack.mosquitto import Mosquitto
from twin_stream.devtools.stack.processes import pid_alive
from twin_stream.devtools.stack.service import Service
from twin_stream.devtools.stack.state import STATE_FILE, StackState, stop
from twin_stream.domain.retention import Retention
from twin_stream.errors import ServiceError
from twin_stream.mqtt_auth import MqttAccount, generate_accounts

__all__ = ["ALL_SERVICES", "Stack"]

log = logging.getLogger(__name__)

ALL_SERVICES: tuple[str, ...] = ("mosquitto", "kafka", "influxdb")


class Stack:
    """A set of local services under one root directory.

    >>> stack = Stack("/tmp/example-stack", services=["mosquitto"], device_ids=["pump-0001"])
    >>> stack.services
    ['mosquitto']

    Use :meth:`up` to start and :meth:`down` to stop; :meth:`load` reads a stack that
    ``twin-stream stack up`` started earlier, from its state file. ``influxd`` names the InfluxDB
    server to run (default: the one ``make influxd`` built, see
    :func:`~twin_stream.devtools.stack.influxdb.find_influxd`).

    Mosquitto also listens with TLS, with a certificate from the stack's own CA, or with
    ``mqtt_tls`` (the server's files, given); ``mqtt_require_certificate`` makes its TLS listener
    want a client certificate (the stack issues one per account). ``kafka_sasl_users`` (user ->
    password) gives Kafka an extra SASL_PLAINTEXT listener that accepts those users.
    ``retention``: how long InfluxDB keeps its points and summaries (the topics' retention is
    set by whoever creates them: :func:`twin_stream.kafka.ensure_topics`).
    ``kafka_brokers`` > 1 runs a KRaft cluster of that many nodes (services ``kafka``,
    ``kafka-2``...; ``kafka``'s URL lists every broker), so that one can be stopped under load.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        services: Iterable[str] = ALL_SERVICES,
        device_ids: Iterable[str] = (),
        accounts: Sequence[MqttAccount] | None = None,
        kafka_libs: Path | None = None,
        kafka_partitions: int = 6,
        influx_database: str = INFLUX_DATABASE,
        influxd: Path | None = None,
        mqtt_tls: TlsFiles | None = None,
        mqtt_require_certificate: bool = False,
        kafka_sasl_users: Mapping[str, str] | None = None,
        kafka_brokers: int = 1,
        retention: Retention | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.services = list(services)
        unknown = set(self.services) - set(ALL_SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {ALL_SERVICES}")
        self.accounts = list(accounts) if accounts is not None else generate_accounts(device_ids)
        self.kafka_libs = kafka_libs or find_kafka_libs()
        self.kafka_partitions = kafka_partitions
        self.influx_database = influx_database
        self.influxd = influxd  # None: the InfluxDB server that `make influxd` built
        self.mqtt_tls = mqtt_tls
        self.mqtt_require_certificate = mqtt_require_certificate
        self.kafka_sasl_users = dict(kafka_sasl_users or {})
        if kafka_brokers < 1:
            raise ValueError("kafka_brokers must be at least 1")
        self.kafka_brokers = kafka_brokers
        self.retention = retention or Retention()
        self.state: StackState | None = None
        # The started processes' handles, kept until down() so that they are reaped here.
        self._running: list[Service] = []

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    def _build(self, name: str) -> list[Service]:
        data_dir = self.root / name
        factories: dict[str, Callable[[], list[Service]]] = {
            "mosquitto": lambda: [
                Mosquitto(
                    data_dir,
                    self.accounts,
                    tls=self.mqtt_tls,
                    require_certificate=self.mqtt_require_certificate,
                )
            ],
            "kafka": lambda: list(
                kafka_cluster(
                    self.root,
                    self.kafka_libs,
                    self.kafka_partitions,
                    self.kafka_brokers,
                    sasl_users=self.kafka_sasl_users,
                )
            ),
            "influxdb": lambda: [
                InfluxDB(data_dir, self.influx_database, self.influxd, self.retention)
            ],
        }
        return factories[name]()

    def up(self, *, timeout: float = 120.0, tie_to_parent: bool = True) -> StackState:
        """Start every service, wait until all are ready, write the state file.

        On any failure, whatever was started is stopped again before the error propagates.
        """
        if self.state_file.exists():
            previous = StackState.from_json(json.loads(self.state_file.read_text()))
            if any(pid_alive(s.pid) for s in previous.services.values()):
                raise ServiceError("stack", f"already running under {self.root}; stop it first")
        self.root.mkdir(parents=True, exist_ok=True)
        started: list[Service] = []
        try:
            built = [service for name in self.services for service in self._build(name)]
            for service in built:
                service.executable()  # fail fast, before starting anything, if one is missing
            for service in built:
                service.start(tie_to_parent=tie_to_parent)
                started.append(service)
            deadline = time.monotonic() + timeout
            for service in started:
                service.wait_ready(deadline)
                log.info("%s ready at %s", service.name, service.url)
        except BaseException:
            for service in started:
                if service.process is not None:
                    service.process.stop(grace_s=10)
            raise
        self._running = started
        self.state = StackState(str(self.root), {s.name: s.info() for s in started})
        self.state_file.write_text(json.dumps(self.state.to_json(), indent=2))
        return self.state

    def _running_service(self, name: str) -> Service:
        for service in self._running:
            if service.name == name:
                return service
        raise ServiceError(name, "not started by this stack")

    def stop_service(self, name: str, *, timeout: float = 20.0) -> None:
        """Stop one service, keeping its port and data, to start it again later (outages)."""
        service = self._running_service(name)
        assert service.process is not None
        service.process.stop(grace_s=timeout)

    def kill_service(self, name: str) -> None:
        """SIGKILL one service (no clean shutdown), keeping its port and data, to start it
        again later with :meth:`start_service` (chaos)."""
        service = self._running_service(name)
        assert service.process is not None
        service.process.kill()

    def start_service(self, name: str, *, timeout: float = 120.0) -> None:
        """Start a service stopped by :meth:`stop_service` again, on the same port and data."""
        service = self._running_service(name)
        service.start(tie_to_parent=True)
        service.wait_ready(time.monotonic() + timeout)
        assert self.state is not None
        self.state.services[name] = service.info()
        self.state_file.write_text(json.dumps(self.state.to_json(), indent=2))

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> StackState:
        """The state of a stack started earlier under ``root``."""
        state_file = Path(root).resolve() / STATE_FILE
        if not state_file.exists():
            raise ServiceError("stack", f"no stack state at {state_file}; run 'stack up' first")
        return StackState.from_json(json.loads(state_file.read_text()))

    def down(self, *, timeout: float = 20.0) -> None:
        """Stop the services of this stack (started here or found in its state file)."""
        state = self.state or (self.load(self.root) if self.state_file.exists() else None)
        if state is None:
            return
        stop(state, timeout=timeout)
        for service in self._running:
            if service.process is not None:
                service.process.wait(timeout=1)
        self._running = []
        self.state = None
