"""The local stack: real Mosquitto, Apache Kafka and InfluxDB as local processes.

No Docker engine is needed. Each service runs as a local process on a free loopback port with its
own data directory under the stack's root; ``up`` waits until every service answers (bounded, and
a failure shows the tail of that service's log); ``down`` stops them all. A state file
(``<root>/state.json``) records each service's pid, port and URL for ``status`` and ``down``.

Services and why they are here:

* **mosquitto** (Debian ``mosquitto``): the device-facing MQTT broker, with per-device password
  auth and ACLs generated from the device list; anonymous clients are refused.
* **kafka** (Apache Kafka 3.9 jars from Maven Central, ``deploy/kafka/pom.xml``): one node in
  KRaft mode, formatted with ``kafka.tools.StorageTool`` and run with ``kafka.Kafka``.
* **influxdb** (InfluxDB OSS 1.13, built from its Go module by ``make influxd`` into
  ``.cache/influxdb``): the one time-series server. The sink writes to it through the InfluxDB
  v2 write API (``/api/v2/write?bucket=DB/RP``, any token: auth is off), and dashboard and alert
  queries are checked on its InfluxQL engine (``/query``). Its database ``twin`` (the sink's
  default bucket) is created on start.

Processes started for a test session are tied to their parent (``PR_SET_PDEATHSIG``), so a killed
test run cannot leave a broker behind; ``twin-stream stack up`` detaches them on purpose and
``twin-stream stack down`` stops them.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import getpass
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from twin_stream.errors import ServiceBinaryMissing, ServiceError, ServiceNotReady
from twin_stream.mqtt_auth import (
    BRIDGE_USER,
    MqttAccount,
    generate_accounts,
    write_auth_files,
)

__all__ = [
    "ALL_SERVICES",
    "ServiceInfo",
    "Stack",
    "StackState",
    "INFLUXDB_VERSION",
    "find_influxd",
    "find_kafka_libs",
    "free_port",
    "mqtt_login_accepted",
    "port_is_open",
    "status",
    "stop",
]

log = logging.getLogger(__name__)

ALL_SERVICES: tuple[str, ...] = ("mosquitto", "kafka", "influxdb")
INFLUXDB_VERSION = "v1.13.2"  # what `make influxd` builds (the Makefile's INFLUXDB_VERSION)
INFLUX_DATABASE = "twin"  # created on start: the sink's default bucket
STATE_FILE = "state.json"
CREDENTIALS_FILE = "mqtt-credentials.json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def find_kafka_libs(start: Path | None = None) -> Path:
    """The folder of Kafka jars fetched by ``make kafka-jars`` (``.cache/kafka/libs``).

    Looks in ``start`` (default: the working directory) and its parents, then beside the package
    source (an editable install), so that it works from any folder of a checkout.
    """
    candidates: list[Path] = []
    for base in [start or Path.cwd(), Path(__file__).resolve().parent]:
        candidates += [p / ".cache" / "kafka" / "libs" for p in [base, *base.parents]]
    for candidate in candidates:
        if any(candidate.glob("kafka_2.13-*.jar")):
            return candidate
    return candidates[0]


def find_influxd(start: Path | None = None) -> Path:
    """The InfluxDB server built by ``make influxd`` (``.cache/influxdb/bin/influxd``).

    Looked for like :func:`find_kafka_libs`; ``$TWIN_INFLUXD`` names another binary.
    """
    if os.environ.get("TWIN_INFLUXD"):
        return Path(os.environ["TWIN_INFLUXD"])
    candidates: list[Path] = []
    for base in [start or Path.cwd(), Path(__file__).resolve().parent]:
        candidates += [p / ".cache" / "influxdb" / "bin" / "influxd" for p in [base, *base.parents]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child when the process that started it dies."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


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


class _Service(ABC):
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
                    self.name, f"exited with code {code}", _log_tail(self.log_path)
                )
            try:
                if self.is_ready():
                    return
            except Exception as e:  # a probe failing is expected until the server is up
                last_error = f"{type(e).__name__}: {e}"
            time.sleep(0.2)
        raise ServiceNotReady(
            self.name, f"not ready in time (last probe: {last_error})", _log_tail(self.log_path)
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


class _Mosquitto(_Service):
    name = "mosquitto"
    binary = "mosquitto"
    debian_package = "mosquitto"

    def __init__(self, data_dir: Path, accounts: Sequence[MqttAccount]) -> None:
        super().__init__(data_dir)
        self.accounts = list(accounts)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        paths = write_auth_files(self.data_dir, self.accounts)
        passwd, acl = paths["passwd"], paths["acl"]
        (self.data_dir / "persistence").mkdir(exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    # Run as whoever started us; as root, Mosquitto would otherwise switch to
                    # the 'mosquitto' user, which cannot read our 0600 password file.
                    f"user {getpass.getuser()}",
                    "per_listener_settings false",
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {passwd}",
                    f"acl_file {acl}",
                    "persistence true",
                    f"persistence_location {self.data_dir / 'persistence'}/",
                    # QoS 1 backpressure from the bridge holds messages in the broker; allow
                    # a deep queue per client so a slow Kafka delays data instead of dropping it.
                    "max_queued_messages 100000",
                    "max_inflight_messages 100",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    "connection_messages true",
                    "",
                ]
            )
        )
        return [self.executable(), "-c", str(conf)]

    def is_ready(self) -> bool:
        # Log in as the bridge: proves the listener, the password file and auth all work.
        bridge = next(a for a in self.accounts if a.username == BRIDGE_USER)
        return mqtt_login_accepted(self.port, bridge.username, bridge.password)

    def extra(self) -> dict[str, Any]:
        return {"credentials_file": str(self.data_dir / CREDENTIALS_FILE), "host": "127.0.0.1"}


class _Kafka(_Service):
    name = "kafka"
    binary = "java"
    debian_package = "openjdk-17-jre-headless"

    def __init__(self, data_dir: Path, kafka_libs: Path, partitions: int) -> None:
        super().__init__(data_dir)
        self.controller_port = free_port()
        self.kafka_libs = kafka_libs
        self.partitions = partitions

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    def _classpath(self) -> str:
        if not any(self.kafka_libs.glob("kafka_2.13-*.jar")):
            raise ServiceBinaryMissing(
                self.name,
                f"{self.kafka_libs}/kafka_2.13-*.jar",
                "fetch the Apache Kafka jars with 'make kafka-jars'",
            )
        return f"{self.kafka_libs}/*"

    def command(self) -> list[str]:
        java = self.executable()
        classpath = self._classpath()
        log_dir = self.data_dir / "kraft-logs"
        props = self.data_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={log_dir}",
                    f"num.partitions={self.partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        log4j = self.data_dir / "log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.org.apache.kafka=WARN\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
        )
        jvm = [
            java,
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            classpath,
        ]
        if not (log_dir / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            # "--cluster-id=ID" in one argument: a random id may begin with "-" (1 in 32), which
            # the tool's argument parser would take for an option ("expected one argument").
            fmt = [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                "-c",
                str(props),
            ]
            result = subprocess.run(fmt, capture_output=True, text=True, timeout=120)
            with open(self.log_path, "a") as f:
                f.write(result.stdout + result.stderr)
            if result.returncode != 0:
                raise ServiceNotReady(
                    self.name, "StorageTool format failed", _log_tail(self.log_path)
                )
        return [*jvm, "kafka.Kafka", str(props)]

    def is_ready(self) -> bool:
        # Ready when a metadata request lists this broker. Knock first: kafka-python leaks a
        # socket for every refused connection, and the JVM takes seconds to open its port.
        if not port_is_open(self.port):
            return False
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.url, request_timeout_ms=3000, client_id="twin-stream-probe"
        )
        try:
            cluster = admin.describe_cluster()
            return any(int(b["broker_id"]) == 1 for b in cluster.get("brokers", []))
        finally:
            admin.close()

    def extra(self) -> dict[str, Any]:
        return {"controller_port": self.controller_port, "partitions": self.partitions}


class _InfluxDB(_Service):
    """InfluxDB OSS 1.13, built from its Go module by ``make influxd`` into ``.cache/influxdb``.

    One server for everything: the sink writes through the v2 write API
    (``/api/v2/write?bucket=DB/RP``), InfluxQL answers on ``/query``. Auth is off, so any token
    is accepted. ``database`` is created once the server answers, so that the sink's default
    bucket (``twin``) exists.
    """

    name = "influxdb"
    binary = "influxd"
    debian_package = ""

    def __init__(self, data_dir: Path, database: str) -> None:
        super().__init__(data_dir)
        self.rpc_port = free_port()
        self.database = database

    def executable(self) -> str:
        found = find_influxd()
        if not found.is_file():
            raise ServiceBinaryMissing(
                self.name, str(found), f"build InfluxDB {INFLUXDB_VERSION} with 'make influxd'"
            )
        return str(found)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ports(self) -> list[int]:
        return [self.port, self.rpc_port]

    def command(self) -> list[str]:
        # Every path in the config: the defaults write under /var/lib/influxdb and ~/.influxdb.
        d = self.data_dir
        conf = d / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  flux-enabled = false
  log-enabled = false
  max-row-limit = 0
  pprof-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""
        )
        return [self.executable(), "run", "-config", str(conf)]

    def environment(self) -> dict[str, str]:
        # Flux's Snowflake driver makes a credential cache dir when the server starts, by
        # default ~/.cache/snowflake: keep it in the data dir (it must exist to be used).
        cache = self.data_dir / "snowflake"
        cache.mkdir(parents=True, exist_ok=True)
        return {"SF_TEMPORARY_CREDENTIAL_CACHE_DIR": str(cache)}

    def is_ready(self) -> bool:
        status, _ = _http_get(f"{self.url}/ping")
        if status != 204:
            return False
        # CREATE DATABASE is idempotent: the same probe serves a restart on the same data.
        query = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.database}"'}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=query, timeout=5) as response:  # noqa: S310 - loopback
            body = json.loads(response.read())
        return "error" not in body["results"][0]

    def extra(self) -> dict[str, Any]:
        return {"rpc_port": self.rpc_port, "database": self.database, "version": INFLUXDB_VERSION}


def mqtt_login_accepted(
    port: int, username: str | None, password: str | None, timeout: float = 5.0
) -> bool:
    """Whether the broker on ``127.0.0.1:port`` accepts this login (None: anonymous)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    answers: list[Any] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex}")
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, reason_code, _p: answers.append(reason_code)
    client.connect("127.0.0.1", port, keepalive=5)
    try:
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
    finally:
        client.disconnect()
        sock = client.socket()  # a refused login leaves paho's socket open
        if sock is not None:
            sock.close()
    if not answers:
        raise TimeoutError("no CONNACK from the broker")
    return not answers[0].is_failure


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # Field 3 is the state; a zombie has exited and only waits to be reaped.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop_process_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if not _pid_alive(pid):
                return
            time.sleep(0.1)
    raise ServiceError(f"pid {pid}", "still running after SIGKILL")


class Stack:
    """A set of local services under one root directory.

    >>> stack = Stack("/tmp/example-stack", services=["mosquitto"], device_ids=["pump-0001"])
    >>> stack.services
    ['mosquitto']

    Use :meth:`up` to start and :meth:`down` to stop; :meth:`load` reads a stack that
    ``twin-stream stack up`` started earlier, from its state file.
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
        self.state: StackState | None = None
        # The started processes' handles, kept until down() so that they are reaped here.
        self._running: list[_Service] = []

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    def _build(self, name: str) -> _Service:
        data_dir = self.root / name
        factories: dict[str, Callable[[], _Service]] = {
            "mosquitto": lambda: _Mosquitto(data_dir, self.accounts),
            "kafka": lambda: _Kafka(data_dir, self.kafka_libs, self.kafka_partitions),
            "influxdb": lambda: _InfluxDB(data_dir, self.influx_database),
        }
        return factories[name]()

    def up(self, *, timeout: float = 120.0, tie_to_parent: bool = True) -> StackState:
        """Start every service, wait until all are ready, write the state file.

        On any failure, whatever was started is stopped again before the error propagates.
        """
        if self.state_file.exists():
            previous = StackState.from_json(json.loads(self.state_file.read_text()))
            if any(_pid_alive(s.pid) for s in previous.services.values()):
                raise ServiceError("stack", f"already running under {self.root}; stop it first")
        self.root.mkdir(parents=True, exist_ok=True)
        started: list[_Service] = []
        try:
            built = [self._build(name) for name in self.services]
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
                    _stop_process_group(service.process.pid, timeout=10)
            raise
        self._running = started
        self.state = StackState(str(self.root), {s.name: s.info() for s in started})
        self.state_file.write_text(json.dumps(self.state.to_json(), indent=2))
        return self.state

    def _running_service(self, name: str) -> _Service:
        for service in self._running:
            if service.name == name:
                return service
        raise ServiceError(name, "not started by this stack")

    def stop_service(self, name: str, *, timeout: float = 20.0) -> None:
        """Stop one service, keeping its port and data, to start it again later (outages)."""
        service = self._running_service(name)
        assert service.process is not None
        _stop_process_group(service.process.pid, timeout=timeout)
        service.process.wait(timeout=1)

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


def status(state: StackState) -> dict[str, dict[str, Any]]:
    """For each service: its URL, pid, whether it runs and whether its port answers."""
    return {
        name: {
            "url": info.url,
            "pid": info.pid,
            "running": _pid_alive(info.pid),
            "port_open": port_is_open(info.port),
            "log": info.log_path,
        }
        for name, info in state.services.items()
    }


def stop(state: StackState, *, timeout: float = 20.0) -> None:
    """Stop every service of ``state`` and remove its state file; raise if a port stays open."""
    # Stop in reverse start order: clients of a service go before it.
    for info in reversed(list(state.services.values())):
        if _pid_alive(info.pid) and _is_ours(info):
            log.info("stopping %s (pid %d)", info.name, info.pid)
            _stop_process_group(info.pid, timeout=timeout)
    still_open = [
        f"{i.name}:{p}" for i in state.services.values() for p in i.ports if port_is_open(p)
    ]
    if still_open:
        raise ServiceError("stack", f"ports still open after stop: {', '.join(still_open)}")
    with contextlib.suppress(FileNotFoundError):
        (Path(state.root) / STATE_FILE).unlink()


def _is_ours(info: ServiceInfo) -> bool:
    """Guard against pid reuse: the process must still be the one we started."""
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return False
    return info.data_dir in cmdline
