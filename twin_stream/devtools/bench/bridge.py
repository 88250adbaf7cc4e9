"""``twin-stream bench bridge``: messages per second the bridge moves from MQTT into Kafka.

Side by side in one run, on the same Mosquitto and Kafka: both drain the same kind of backlog
(valid telemetry queued in the broker for a persistent session, QoS 1).

* ours: ``twin-stream``'s bridge (paho-mqtt, validation, confluent-kafka, idempotent with
  ``acks=all``, acking MQTT in receive order only after Kafka confirmed each record);
* peer: the C pipeline ``mosquitto_sub -q 1 | kcat -P`` (acks MQTT on receipt, no validation).

The processes: each backlog's ``mosquitto_pub -l`` publishers, and the ``mosquitto_sub -E``
that registers the peer's session, run under the harness
(:class:`~twin_stream.devtools.stack.harness.ManagedProcess`): a publisher's lines are
written to a file first and read as its standard input, its output goes to a log, and one
that fails raises with its exit code and the end of its log; any still running when one fails
are stopped. The peer's two processes are not: the pipe between them *is* what is measured (the
harness writes a process's output to a log, never to another process), so they are started with
:class:`subprocess.Popen` joined by a pipe, each tied to this process and its standard error
in a log; the run fails if either exits with an error, with both exit codes and the ends of
both logs, and neither is left running whatever happens.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulators.device import SimulatedDevice
from twin_stream.bridge.uplink import MqttEndpoint, Uplink
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.bench.readback import count_records
from twin_stream.devtools.stack import Stack
from twin_stream.devtools.stack.harness import ManagedProcess, stop_all
from twin_stream.devtools.stack.processes import die_with_parent, log_tail
from twin_stream.domain.devices import fleet_device
from twin_stream.domain.topics import kafka_topics, mqtt_topic
from twin_stream.errors import ServiceBinaryMissing, ServiceError, ServiceExited
from twin_stream.kafka import close_librdkafka_producer, ensure_topics, make_librdkafka_producer

__all__ = ["bench_bridge"]


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceBinaryMissing("bench", name, f"install the Debian package '{package}'")
    return found


def _backlog(port: int, passwords: dict[str, str], per_device: int, workdir: Path) -> None:
    """Publish ``per_device`` valid readings from each device with mosquitto_pub (QoS 1), one
    publisher per device at once, each reading its lines from a file in ``workdir``."""
    publisher = _binary("mosquitto_pub", "mosquitto-clients")
    now = datetime.now(UTC)
    workdir.mkdir(parents=True, exist_ok=True)
    procs: list[ManagedProcess] = []
    for device_id, password in passwords.items():
        device = SimulatedDevice.create(device_id, fleet_device(int(device_id[-4:]))[1], seed=1)
        lines = workdir / f"{device_id}.lines"
        lines.write_bytes(
            b"".join(
                device.telemetry_payload(float(i), 1.0, now) + b"\n" for i in range(per_device)
            )
        )
        procs.append(
            ManagedProcess(
                f"mosquitto_pub {device_id}",
                [
                    publisher,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-u",
                    device_id,
                    "-P",
                    password,
                    "-i",
                    f"{device_id}-backlog",
                    "-q",
                    "1",
                    "-t",
                    mqtt_topic(device_id, "telemetry"),
                    "-l",
                ],
                workdir / f"{device_id}.log",
                stdin=lines,
            )
        )
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            code = proc.wait(timeout=600)
            if code != 0:
                raise ServiceExited(proc.name, code, proc.tail())
    finally:
        stop_all(procs, grace_s=5.0)  # those still running when one failed


def _register_peer_session(base: list[str], workdir: Path) -> None:
    """Connect as the peer, subscribe (its persistent session, which queues the backlog) and
    exit once the broker acknowledged the subscription (``mosquitto_sub -E``)."""
    register = ManagedProcess("mosquitto_sub -E", [*base, "-E"], workdir / "peer-register.log")
    with register:
        code = register.wait(timeout=60)
    if code != 0:
        raise ServiceExited(register.name, code, register.tail())


def _peer_pipeline(sub: list[str], kcat: list[str], workdir: Path) -> int:
    """``SUB | KCAT``, until both exit; kcat's exit code. Raises, with both exit codes and the
    ends of their logs (their standard error), if either fails; neither is left running."""
    sub_log, kcat_log = workdir / "peer-mosquitto_sub.log", workdir / "peer-kcat.log"
    with open(sub_log, "ab") as sub_err, open(kcat_log, "ab") as kcat_err:
        subscriber = subprocess.Popen(
            sub, stdout=subprocess.PIPE, stderr=sub_err, preexec_fn=die_with_parent
        )
        running = [subscriber]
        try:
            assert subscriber.stdout is not None
            producer = subprocess.Popen(
                kcat, stdin=subscriber.stdout, stderr=kcat_err, preexec_fn=die_with_parent
            )
            running.append(producer)
            subscriber.stdout.close()  # kcat's copy only: a kcat that dies ends the subscriber
            kcat_code = producer.wait(timeout=600)
            sub_code = subscriber.wait(timeout=60)
        finally:
            for proc in running:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    if sub_code != 0 or kcat_code != 0:
        raise ServiceError(
            "bench",
            f"the peer pipeline failed: mosquitto_sub exited with {sub_code}, kcat with "
            f"{kcat_code}\n--- mosquitto_sub ---\n{log_tail(sub_log)}"
            f"\n--- kcat ---\n{log_tail(kcat_log)}",
        )
    return kcat_code


def bench_bridge(
    *,
    devices: int = 10,
    per_device: int = 5000,
    max_unacked: int = 1000,
    producer_options: dict[str, object] | None = None,
) -> dict[str, Any]:
    """Both sides' msgs/s; ``max_unacked`` and ``producer_options`` (librdkafka's) tune ours."""
    total = devices * per_device
    ids = [fleet_device(i)[0] for i in range(1, devices + 1)]
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        root = Path(tmp)
        stack = Stack(root / "stack", services=["mosquitto", "kafka"], device_ids=ids)
        state = stack.up()
        try:
            port, bootstrap = state.services["mosquitto"].port, state.url("kafka")
            accounts = {a.username: a.password for a in stack.accounts}
            bridge_pw = accounts["bridge"]
            topics = kafka_topics("bench")
            ensure_topics(bootstrap, 6, {}, topics)

            # ours: register the persistent session, queue the backlog, then drain it
            endpoint = MqttEndpoint("127.0.0.1", port, "bridge", bridge_pw, "bench-bridge")
            producer = make_librdkafka_producer(bootstrap, producer_options or {})
            uplink = Uplink(
                endpoint, producer, share_group="bench", max_unacked=max_unacked, topics=topics
            )
            uplink.start()
            if not uplink.connected.wait(30):
                raise ServiceError("bench", "the bridge did not connect to Mosquitto in 30 s")
            uplink.client.disconnect()
            uplink.client.loop_stop()
            _backlog(port, {d: accounts[d] for d in ids}, per_device, root / "backlog-ours")
            uplink = Uplink(
                endpoint, producer, share_group="bench", max_unacked=max_unacked, topics=topics
            )
            started = time.perf_counter()
            uplink.start()
            stop = threading.Event()
            runner = threading.Thread(target=uplink.run, args=(stop,))
            runner.start()
            while uplink.stats.acked < total and time.perf_counter() - started < 600:
                time.sleep(0.05)
            ours_s = time.perf_counter() - started
            stop.set()
            runner.join()
            uplink.stop()
            close_librdkafka_producer(producer)
            forwarded = count_records(bootstrap, topics["telemetry"], total)

            # peer: mosquitto_sub | kcat -P, same kind of backlog on its own persistent session
            sub = _binary("mosquitto_sub", "mosquitto-clients")
            kcat = _binary("kcat", "kcat")
            peer_topic = "bench.peer"
            base = [
                sub,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-u",
                "bridge",
                "-P",
                bridge_pw,
                "-q",
                "1",
                "-c",
                "-i",
                "bench-peer",
                "-t",
                "$share/peer/twin/v1/devices/+/telemetry",
            ]
            _register_peer_session(base, root)
            _backlog(port, {d: accounts[d] for d in ids}, per_device, root / "backlog-peer")
            started = time.perf_counter()
            kcat_exit = _peer_pipeline(
                [*base, "-C", str(total), "-F", "%t\t%p"],
                [kcat, "-P", "-b", bootstrap, "-t", peer_topic, "-K", "\t", "-X", "acks=all"],
                root,
            )
            peer_s = time.perf_counter() - started
            peer_forwarded = count_records(bootstrap, peer_topic, total)
        finally:
            stack.down()
    ours = forwarded / ours_s
    peer = peer_forwarded / peer_s
    return {
        "msgs_per_s": round(ours, 1),
        "peer_msgs_per_s": round(peer, 1),
        "ratio": round(ours / peer, 3),
        "messages": total,
        "forwarded": forwarded,
        "peer_forwarded": peer_forwarded,
        "peer": "mosquitto_sub -q 1 | kcat -P -X acks=all",
        "kcat_exit": kcat_exit,
        "machine": machine_info(),
    }
