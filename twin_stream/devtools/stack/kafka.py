"""Apache Kafka 3.9 (jars from Maven Central, ``deploy/kafka/pom.xml``) for the local stack.

One node in KRaft mode, formatted with ``kafka.tools.StorageTool`` and run with ``kafka.Kafka``
on ``java`` (Debian ``openjdk-17-jre-headless``). Ready once a metadata request lists the broker.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.probes import free_port, port_is_open
from twin_stream.devtools.stack.processes import log_tail
from twin_stream.devtools.stack.service import Service
from twin_stream.errors import ServiceBinaryMissing, ServiceNotReady

__all__ = ["Kafka", "find_kafka_libs"]


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
                    self.name, "StorageTool format failed", log_tail(self.log_path)
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
