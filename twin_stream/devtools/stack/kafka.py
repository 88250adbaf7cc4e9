"""Apache Kafka 3.9 (jars from Maven Central, ``deploy/kafka/pom.xml``) for the local stack.

One node in KRaft mode (broker and controller), formatted with ``kafka.tools.StorageTool`` and
run with ``kafka.Kafka`` on ``java`` (Debian ``openjdk-17-jre-headless``); or a cluster of several
such nodes on loopback (:func:`kafka_cluster`: ``stack up --kafka-brokers 3``), each a service of
its own (``kafka``, ``kafka-2``, ``kafka-3``) so that one can be stopped while the others serve.
Ready once a metadata request lists the node's broker.

With ``sasl_users`` it also listens on ``sasl_port`` with SASL_PLAINTEXT (mechanism PLAIN, the
users and passwords given, kept in the owner-only ``server.properties`` and
``sasl-credentials.json``), so that clients' SASL settings are tested against a real broker;
the PLAINTEXT listener stays for the broker's own traffic and the readiness probe.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.probes import free_port, port_is_open
from twin_stream.devtools.stack.processes import log_tail
from twin_stream.devtools.stack.service import Service
from twin_stream.errors import ServiceBinaryMissing, ServiceNotReady

__all__ = ["SASL_CREDENTIALS_FILE", "SASL_MECHANISM", "Kafka", "find_kafka_libs", "kafka_cluster"]

SASL_MECHANISM = "PLAIN"
SASL_CREDENTIALS_FILE = "sasl-credentials.json"
#: What a SASL user name or password may hold: it is written into a JAAS line between quotes.
_JAAS_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]+")


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


class Kafka(Service):
    name = "kafka"
    binary = "java"
    debian_package = "openjdk-17-jre-headless"

    def __init__(
        self,
        data_dir: Path,
        kafka_libs: Path,
        partitions: int,
        *,
        sasl_users: Mapping[str, str] | None = None,
        node_id: int = 1,
    ) -> None:
        self.node_id = node_id
        if node_id != 1:
            self.name = f"kafka-{node_id}"  # type: ignore[misc]  # one service per node
        super().__init__(data_dir)
        self.controller_port = free_port()
        #: every node of the cluster (this one included): its id, broker and controller ports
        self.peers: list[Kafka] = [self]
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        self.kafka_libs = kafka_libs
        self.partitions = partitions
        self.sasl_users = dict(sasl_users or {})
        for name, password in self.sasl_users.items():
            if not (_JAAS_SAFE.fullmatch(name) and _JAAS_SAFE.fullmatch(password)):
                raise ValueError(f"SASL user {name!r}: use letters, digits and ._~+/=- only")
        self.sasl_port = free_port() if self.sasl_users else None

    @property
    def url(self) -> str:
        """The bootstrap servers: every node's, so a client can start while one is down."""
        return ",".join(f"127.0.0.1:{p.port}" for p in self.peers)

    @property
    def sasl_url(self) -> str | None:
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_port is not None else None

    def ports(self) -> list[int]:
        sasl = [self.sasl_port] if self.sasl_port is not None else []
        return [self.port, self.controller_port, *sasl]

    def _listener_properties(self) -> list[str]:
        """The listeners: PLAINTEXT and CONTROLLER, and SASL_PLAINTEXT with ``sasl_users``."""
        listeners = [
            f"PLAINTEXT://127.0.0.1:{self.port}",
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
        ]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        sasl: list[str] = []
        if self.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            # PlainLoginModule: one user_NAME="PASSWORD" per account the broker accepts.
            users = " ".join(f'user_{n}="{p}"' for n, p in self.sasl_users.items())
            sasl = [
                f"listener.name.sasl_plaintext.sasl.enabled.mechanisms={SASL_MECHANISM}",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
            ]
        return [
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            f"listener.security.protocol.map={protocols}",
            *sasl,
        ]

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
        voters = ",".join(f"{p.node_id}@127.0.0.1:{p.controller_port}" for p in self.peers)
        replicas = min(3, len(self.peers))
        in_sync = min(2, replicas)
        props.touch(mode=0o600)  # it holds the SASL passwords, if any
        props.chmod(0o600)
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={self.node_id}",
                    f"controller.quorum.voters={voters}",
                    *self._listener_properties(),
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={log_dir}",
                    f"num.partitions={self.partitions}",
                    # Kafka's own topics (group offsets, transactions) on every node of a
                    # cluster, and a write needs two of three; one node: one copy.
                    f"offsets.topic.replication.factor={replicas}",
                    "offsets.topic.num.partitions=6",
                    f"transaction.state.log.replication.factor={replicas}",
                    f"transaction.state.log.min.isr={in_sync}",
                    f"default.replication.factor={replicas}",
                    f"min.insync.replicas={in_sync}",
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
            # One cluster id for every node of a cluster. "--cluster-id=ID" in one argument: a
            # random id may begin with "-" (1 in 32), which the tool's argument parser would
            # take for an option ("expected one argument").
            fmt = [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={self.cluster_id}",
                "-c",
                str(props),
            ]
            result = subprocess.run(fmt, capture_output=True, text=True, timeout=120)
            with open(self.log_path, "a") as f:
                f.write(result.stdout + result.stderr)
            if result.returncode != 0:
                raise ServiceNotReady(
                    self.name, "StorageTool format failed", log_tail(self.log_path)
                )
        if self.sasl_users:
            credentials = self.data_dir / SASL_CREDENTIALS_FILE
            credentials.touch(mode=0o600)
            credentials.chmod(0o600)
            credentials.write_text(json.dumps(self.sasl_users))
        return [*jvm, "kafka.Kafka", str(props)]

    def is_ready(self) -> bool:
        # Ready when this node's metadata lists itself and every running peer: a client that
        # bootstraps from this node then knows each broker it may be sent to (creating topics
        # through a controller this node did not know yet was UnknownBrokerIdError in CI).
        # Knock first: kafka-python leaks a socket for every refused connection, and the JVM
        # takes seconds to open its port.
        if not port_is_open(self.port):
            return False
        if self.sasl_port is not None and not port_is_open(self.sasl_port):
            return False
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=f"127.0.0.1:{self.port}",
            request_timeout_ms=3000,
            client_id="twin-stream-probe",
        )
        try:
            cluster = admin.describe_cluster()
            listed = {int(b["broker_id"]) for b in cluster.get("brokers", [])}
            return self._expected_brokers() <= listed
        finally:
            admin.close()

    def _expected_brokers(self) -> set[int]:
        """This node and every peer whose process runs (one stopped for an outage is not
        waited for)."""
        return {self.node_id} | {
            p.node_id for p in self.peers if p.process is not None and p.process.alive()
        }

    def extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "controller_port": self.controller_port,
            "partitions": self.partitions,
            "node_id": self.node_id,
            "brokers": len(self.peers),
        }
        if self.sasl_port is not None:
            extra["sasl_bootstrap"] = self.sasl_url
            extra["sasl_mechanism"] = SASL_MECHANISM
            extra["sasl_credentials_file"] = str(self.data_dir / SASL_CREDENTIALS_FILE)
        return extra


def kafka_cluster(
    root: Path,
    kafka_libs: Path,
    partitions: int,
    brokers: int,
    *,
    sasl_users: Mapping[str, str] | None = None,
) -> list[Kafka]:
    """``brokers`` KRaft nodes on loopback that form one cluster (each broker and controller;
    a quorum of controllers needs a majority, so 3 survive the loss of one). The first is the
    service ``kafka`` (under ``root/kafka``), the others ``kafka-2``, ``kafka-3``..."""
    if brokers < 1:
        raise ValueError("a Kafka cluster needs at least one broker")
    nodes = [
        Kafka(
            root / ("kafka" if i == 1 else f"kafka-{i}"),
            kafka_libs,
            partitions,
            sasl_users=sasl_users if i == 1 else None,
            node_id=i,
        )
        for i in range(1, brokers + 1)
    ]
    for node in nodes:
        node.peers = nodes
        node.cluster_id = nodes[0].cluster_id
    return nodes
