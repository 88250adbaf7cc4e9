"""The platform a chaos run breaks: the local stack (Mosquitto, Kafka, InfluxDB) and the
``twin-stream`` processes (the bridge, two workers, the sink), each of which can be killed and
started again.

Every process is a :class:`~twin_stream.devtools.stack.harness.ManagedProcess`: in its own
process group with its own log (appended to across restarts, each start marked, so one file
tells a component's whole run), tied to this process so that a killed run leaves nothing
behind. The stack's services are stopped and started again through
:class:`~twin_stream.devtools.stack.Stack` (same port, same data).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin_stream.devtools.demo.run import demo_token
from twin_stream.devtools.stack import Stack, StackState, free_port
from twin_stream.devtools.stack.harness import ManagedProcess
from twin_stream.domain.topics import kafka_topics
from twin_stream.errors import TwinStreamError
from twin_stream.kafka import ensure_topics

__all__ = ["Platform"]


@dataclass
class Platform:
    """The stack and the pipeline's processes of one chaos run, under ``root``."""

    root: Path
    device_ids: list[str]
    workers: int = 2
    partitions: int = 6
    #: Kafka brokers: 1, or a cluster (3) whose topics are replicated 3 times, 2 in sync.
    kafka_brokers: int = 1
    stack: Stack = field(init=False)
    state: StackState | None = None
    children: dict[str, ManagedProcess] = field(default_factory=dict)
    token: str = ""
    topics: dict[str, str] = field(default_factory=lambda: kafka_topics("twin"))
    #: Whether the workers answer ``GET /ready`` (a readiness endpoint), found at start.
    has_ready: bool = False

    def __post_init__(self) -> None:
        self.stack = Stack(
            self.root / "stack",
            services=["mosquitto", "kafka", "influxdb"],
            device_ids=self.device_ids,
            kafka_partitions=self.partitions,
            kafka_brokers=self.kafka_brokers,
        )

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def url(self, service: str) -> str:
        assert self.state is not None
        return self.state.url(service)

    @property
    def mqtt_port(self) -> int:
        assert self.state is not None
        return self.state.services["mosquitto"].port

    @property
    def passwords(self) -> dict[str, str]:
        return {a.username: a.password for a in self.stack.accounts}

    def pid_of(self, name: str) -> int | None:
        """The pid of a pipeline process (``bridge``, ``sink``, ``worker-0``...) or of a stack
        service (``mosquitto``, ``kafka``...), None if it is not running."""
        if name in self.children:
            child = self.children[name]
            return child.pid if child.process is not None else None
        if self.state is not None and name in self.state.services:
            return self.state.services[name].pid
        return None

    def rss_mb(self, name: str) -> float | None:
        """Resident memory of ``name``'s process in MiB (``/proc/PID/status``), None if it is
        not running."""
        pid = self.pid_of(name)
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except FileNotFoundError:  # it exited (killed by the fault): no figure for now
            return None
        return None

    def worker_names(self) -> list[str]:
        return [f"worker-{i}" for i in range(self.workers)]

    def worker_port(self, name: str) -> int:
        args = self.children[name].argv
        return int(args[args.index("--web-port") + 1])

    def up(self, timeout: float = 180.0) -> None:
        """Start the stack, make the topics, start the bridge, the sink and the workers."""
        self.state = self.stack.up(timeout=timeout)
        bootstrap = self.url("kafka")
        replicas, in_sync = (3, 2) if self.kafka_brokers >= 3 else (1, 1)
        ensure_topics(
            bootstrap,
            self.partitions,
            {},
            self.topics,
            replication_factor=replicas,
            min_insync_replicas=in_sync,
        )
        tokens_file = self.root / "api-tokens.json"
        self.token = demo_token(tokens_file)
        mosquitto = self.state.services["mosquitto"]
        # Every endpoint named, whatever the caller's environment says.
        env = {
            "TWIN_STACK__DIR": str(self.root / "stack"),
            "TWIN_KAFKA__BOOTSTRAP": bootstrap,
            "TWIN_KAFKA__PARTITIONS": str(self.partitions),
            "TWIN_INFLUX__URL": self.url("influxdb"),
            "TWIN_MQTT__URL": mosquitto.url,
            "TWIN_MQTT__CREDENTIALS_FILE": str(mosquitto.extra["credentials_file"]),
            "TWIN_API__TOKENS_FILE": str(tokens_file),
            "TWIN_API__TOKENS": "",
            "TWIN_KAFKA__REPLICATION_FACTOR": str(replicas),
            "TWIN_KAFKA__MIN_INSYNC_REPLICAS": str(in_sync),
        }
        for name in ("bridge", "sink"):
            self.children[name] = self._child(name, [name], env)
        for name in self.worker_names():
            args = [
                "worker",
                "--web-port",
                str(free_port()),
                "--data-dir",
                str(self.root / name),
            ]
            self.children[name] = self._child(name, args, env)
        for child in self.children.values():
            child.start()

    def _child(self, name: str, args: list[str], env: dict[str, str]) -> ManagedProcess:
        """``twin-stream ARGS``, its log appended to across restarts, each start marked in it."""
        return ManagedProcess.twin_stream(
            name, args, self.logs / f"{name}.log", env=env, marker="chaos"
        )

    def down(self) -> None:
        """Stop every process (SIGTERM first), then the stack; keep the logs, drop the data."""
        errors: list[BaseException] = []
        for child in self.children.values():
            try:
                child.stop()
            except (OSError, subprocess.SubprocessError, TwinStreamError) as e:
                errors.append(e)
        services = dict(self.state.services) if self.state is not None else {}
        self.stack.down()
        for name, info in services.items():  # once stopped: every line is flushed
            with contextlib.suppress(OSError):
                (self.logs / f"{name}.log").write_bytes(Path(info.log_path).read_bytes())
        # The logs stay; the data (Kafka's log segments above all) goes.
        for data in [self.root / "stack", *(self.root / w for w in self.worker_names())]:
            shutil.rmtree(data, ignore_errors=True)
        if errors:
            raise errors[0]

    # -- the twin API ---------------------------------------------------------------------------

    def api(self, worker: str, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        """``GET path`` on a worker's twin API with the run's admin token: (status, JSON body);
        status 0 when it does not answer."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.worker_port(worker)}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            with e:
                body = e.read()
            try:
                return int(e.code), json.loads(body or b"null")
            except ValueError:
                return int(e.code), None
        except (OSError, ValueError):
            return 0, None

    def ready(self, worker: str) -> bool:
        """Whether a worker is ready: ``GET /ready`` answers 200 where the workers have it."""
        status, _ = self.api(worker, "/ready")
        return status == 200

    def find_readiness(self, timeout: float = 180.0) -> None:
        """Find whether the workers have ``GET /ready``, once their API answers at all: a route
        they do not know is a 404 (or, for a token that may not see it, 403)."""
        worker = self.worker_names()[0]
        said: list[int] = []

        def answered() -> bool:
            said.append(self.api(worker, "/ready")[0])
            return said[-1] in (200, 503, 403, 404)

        self.children[worker].wait_ready(timeout, until=answered, interval=1.0)
        self.has_ready = said[-1] in (200, 503)

    def open_alert_ids(self) -> set[str] | None:
        """The alerts the workers hold open now (``GET /alerts``, gathered from every worker),
        or None if no worker answered."""
        for worker in self.worker_names():
            status, body = self.api(worker, "/alerts", timeout=20.0)
            if status == 200 and isinstance(body, list):
                return {str(a["alert_id"]) for a in body}
        return None
