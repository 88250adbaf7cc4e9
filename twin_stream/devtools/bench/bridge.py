"""``twin-stream bench bridge``: messages per second the bridge moves from MQTT into Kafka.

Side by side in one run, on the same Mosquitto and Kafka: both drain the same kind of backlog
(valid telemetry queued in the broker for a persistent session, QoS 1).

* ours: ``twin-stream``'s bridge (paho-mqtt, validation, confluent-kafka, idempotent with
  ``acks=all``, acking MQTT in receive order only after Kafka confirmed each record);
* peer: the C pipeline ``mosquitto_sub -q 1 | kcat -P`` (acks MQTT on receipt, no validation).
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
from twin_stream.domain.devices import fleet_device
from twin_stream.domain.topics import kafka_topics, mqtt_topic
from twin_stream.errors import ServiceBinaryMissing
from twin_stream.kafka import close_librdkafka_producer, ensure_topics, make_librdkafka_producer

__all__ = ["bench_bridge"]


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceBinaryMissing("bench", name, f"install the Debian package '{package}'")
    return found


def _backlog(port: int, passwords: dict[str, str], per_device: int) -> None:
    """Publish ``per_device`` valid readings from each device with mosquitto_pub (QoS 1)."""
    publisher = _binary("mosquitto_pub", "mosquitto-clients")
    now = datetime.now(UTC)
    procs = []
    for device_id, password in passwords.items():
        device = SimulatedDevice.create(device_id, fleet_device(int(device_id[-4:]))[1], seed=1)
        lines = b"".join(
            device.telemetry_payload(float(i), 1.0, now) + b"\n" for i in range(per_device)
        )
        proc = subprocess.Popen(
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
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        proc.stdin.write(lines)
        proc.stdin.close()
        procs.append(proc)
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"mosquitto_pub failed: {err}")


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
        stack = Stack(Path(tmp), services=["mosquitto", "kafka"], device_ids=ids)
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
            uplink.connected.wait(30)
            uplink.client.disconnect()
            uplink.client.loop_stop()
            _backlog(port, {d: accounts[d] for d in ids}, per_device)
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
            subprocess.run([*base, "-W", "1"], capture_output=True)  # registers the session
            _backlog(port, {d: accounts[d] for d in ids}, per_device)
            started = time.perf_counter()
            subscriber = subprocess.Popen(
                [*base, "-C", str(total), "-F", "%t\t%p"], stdout=subprocess.PIPE
            )
            producer_proc = subprocess.run(
                [kcat, "-P", "-b", bootstrap, "-t", peer_topic, "-K", "\t", "-X", "acks=all"],
                stdin=subscriber.stdout,
                timeout=600,
            )
            subscriber.wait(timeout=60)
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
        "kcat_exit": producer_proc.returncode,
        "machine": machine_info(),
    }
