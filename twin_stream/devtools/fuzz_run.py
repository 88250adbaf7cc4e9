"""``twin-stream fuzz``: the fuzzer's probes (:mod:`twin_stream.devtools.fuzz`) sent through the
real bridge at load, a valid reading after each, and what became of every one of them counted.

* :func:`run_fuzz` sends and counts, against any Mosquitto and Kafka with a bridge running
  between them: each device publishes, on its own MQTT connection (v5, QoS 1), its probes, each
  followed by a valid reading of its own (the simulator's). Then it reads back the dead-letter
  topic and the topics the bridge writes, and checks, by the bytes:
  - every probe the bridge owes a dead letter is in one, with a reason that ends with a rule
    (one of those the probe's defect breaks, where that is known), keyed by its device;
  - every probe the broker owes a refusal got it (PUBACK "Not authorized") and reached Kafka
    nowhere, neither dead-lettered nor forwarded;
  - every valid reading arrived on the telemetry topic once, in its device's order, exactly as
    the bridge's validation forwards it.
* :func:`watched` runs a ``twin-stream`` service (the bridge, a worker) as a process and says
  whether it crashed: died, exited with an error, or wrote a traceback in its log.
* :func:`fuzz_stack` runs the whole thing on a local stack of its own (Mosquitto and Kafka, the
  bridge and a worker as processes): the command.
"""

from __future__ import annotations

import base64
import hashlib
import operator
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

import orjson
import paho.mqtt.client as mqtt
from kafka import KafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simulators.device import SimulatedDevice
from twin_stream.bridge.routing import MAX_LETTER_PAYLOAD_BYTES, route
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.fuzz import (
    CATEGORIES,
    DEAD_LETTERED,
    Device,
    Probe,
    fleet,
)
from twin_stream.devtools.fuzz import probes as make_probes
from twin_stream.devtools.stack import Stack, free_port
from twin_stream.devtools.stack.probes import http_get
from twin_stream.devtools.stack.processes import log_tail, subcommand
from twin_stream.domain.messages import MAX_PAYLOAD_BYTES
from twin_stream.domain.topics import kafka_topics, mqtt_topic
from twin_stream.errors import MqttError, ServiceError
from twin_stream.kafka import ensure_topics

__all__ = ["Broker", "FuzzReport", "Watched", "fuzz_stack", "run_fuzz", "watched"]

#: PUBACK reason codes (MQTT v5).
_SUCCESS: Final = 0
_NO_SUBSCRIBERS: Final = 16
_NOT_AUTHORIZED: Final = 135
#: The rule a reason ends with (as the sink reads it).
_RULE: Final = re.compile(r"\[([a-z_]+)\]$")
_KEPT: Final = re.compile(r"\(the letter keeps its first (\d+) of (\d+) bytes\)")


@dataclass(frozen=True)
class Broker:
    """Where the devices publish, and each device's password."""

    host: str
    port: int
    passwords: Mapping[str, str]


class _DeviceClient:
    """One device's MQTT v5 connection, and the PUBACK reason code of each message it sent."""

    def __init__(self, broker: Broker, device_id: str) -> None:
        self.device_id = device_id
        self.connected = threading.Event()
        self.refusal: str | None = None
        self.max_packet_size: int | None = None
        self.acks: dict[int, int] = {}  # mid -> reason code
        self.dropped: int | None = None  # the broker closed the connection, with this reason
        self.sent = 0
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fuzz-{device_id}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(device_id, broker.passwords[device_id])
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.client = client
        self.broker = broker

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
        else:
            self.max_packet_size = getattr(properties, "MaximumPacketSize", None)
        self.connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.acks[mid] = reason.value

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.dropped is None:
            self.dropped = reason.value

    def connect(self, timeout: float = 10.0) -> None:
        self.client.connect(self.broker.host, self.broker.port, keepalive=60)
        self.client.loop_start()
        if not self.connected.wait(timeout) or self.refusal is not None:
            self.close()
            why = self.refusal or f"no CONNACK within {timeout:g} s"
            raise MqttError(f"mqtt {self.broker.host}:{self.broker.port}: {self.device_id}: {why}")

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"{self.device_id} could not publish on {topic}: {info.rc}")
        self.sent += 1
        if self.sent >= 65_535:  # mids wrap: one connection's answers would be mixed up
            raise MqttError(f"{self.device_id}: over 65,534 messages on one connection")
        return info.mid

    def settled(self) -> bool:
        return len(self.acks) >= self.sent

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Watched:
    """A ``twin-stream`` service run as a process, and whether it crashed."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    alive_at_end: bool | None = None  # running when the run ended (before it was stopped)
    exit_code: int | None = None  # once stopped (SIGTERM)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tracebacks(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("Traceback (most recent call last)")
        except FileNotFoundError:
            return 0

    def crashes(self) -> list[str]:
        """What went wrong with it: empty if nothing did."""
        found = []
        if self.alive_at_end is False:
            found.append(f"{self.name} died during the run (exit code {self.proc.returncode})")
        elif self.exit_code not in (None, 0):
            found.append(f"{self.name} exited with {self.exit_code} when stopped")
        if self.tracebacks():
            found.append(f"{self.name} logged {self.tracebacks()} traceback(s) in {self.log}")
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "alive_at_end": self.alive_at_end,
            "exit_code": self.exit_code,
            "tracebacks": self.tracebacks(),
            "log": str(self.log),
        }


@contextmanager
def watched(name: str, args: list[str], env: dict[str, str], log: Path) -> Iterator[Watched]:
    """``twin-stream ARGS`` as a process while the block runs; stopped (SIGTERM) after it, with
    whether it was alive until then and how it exited recorded."""
    with subcommand(args, env, log) as proc:
        service = Watched(name, proc, log)
        try:
            yield service
        finally:
            service.alive_at_end = service.alive()
    service.exit_code = proc.returncode


# --- the run -----------------------------------------------------------------------------------


def _zero() -> dict[str, int]:
    return {"sent": 0, "dead_lettered": 0, "refused": 0, "lost": 0, "leaked": 0, "wrong_rule": 0}


@dataclass
class FuzzReport:
    """What became of everything a run sent."""

    categories: dict[str, dict[str, int]] = field(
        default_factory=lambda: {c: _zero() for c in CATEGORIES}
    )
    #: valid readings: sent, arrived as expected, missing, duplicated, altered, out of order
    valid: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("sent", "arrived", "missing", "duplicates", "altered", "out_of_order", "not_acked"),
            0,
        )
    )
    #: dead letters that answer no probe (of a message sent before the run, say)
    unexpected_letters: int = 0
    #: examples of what went wrong, a few of each kind
    problems: dict[str, list[str]] = field(default_factory=dict)
    publish_s: float = 0.0
    drain_s: float = 0.0
    messages_per_s: float = 0.0
    broker_max_packet_size: int | None = None
    largest_payload: int = 0

    def note(self, kind: str, what: str) -> None:
        examples = self.problems.setdefault(kind, [])
        if len(examples) < 5:
            examples.append(what[:300])

    def totals(self) -> dict[str, int]:
        total = _zero()
        for row in self.categories.values():
            for key, value in row.items():
                total[key] += value
        return total

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bad"] = self.totals()
        return data


@dataclass
class _Sent:
    """One message sent: what it was, on which connection, its mid."""

    client: _DeviceClient | None  # None: sent on a connection of its own (over the limit)
    mid: int
    probe: Probe | None = None  # None: a valid reading
    device_id: str = ""
    seq: int = -1
    expected: bytes = b""  # a valid reading as the bridge forwards it
    #: Over the broker's packet limit: the reason code it closed the connection with, if it did.
    dropped: int | None = None

    def code(self) -> int | None:
        """The broker's PUBACK reason code, if it answered."""
        return None if self.client is None else self.client.acks.get(self.mid)


def _expected_on_kafka(
    probe: Probe, now: datetime, topics: dict[str, str]
) -> tuple[str, bytes] | None:
    """Where and how a refused probe would show on Kafka had the broker let it through."""
    routed = route(probe.topic, probe.payload, now=now, topics=topics)
    return None if routed.reason is not None else (routed.kafka_topic, routed.value)


def run_fuzz(
    broker: Broker,
    bootstrap: str,
    topics: dict[str, str],
    probes: Sequence[Probe],
    devices: Sequence[Device],
    *,
    rate: float,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    services: Sequence[Watched] = (),
    drain_timeout_s: float = 120.0,
) -> FuzzReport:
    """Send ``probes``, each followed by a valid reading of its device, at ``rate`` messages a
    second in all, through the bridge between ``broker`` and Kafka (``bootstrap``, ``topics``),
    and count what became of each (see the module's doc). ``services`` are watched: one that
    dies ends the waiting."""
    report = FuzzReport()
    report.largest_payload = max((len(p.payload) for p in probes), default=0)
    with ExitStack() as closing:
        clients: dict[str, _DeviceClient] = {}
        for device in devices:
            client = _DeviceClient(broker, device.device_id)
            client.connect()
            closing.callback(client.close)
            clients[device.device_id] = client
        report.broker_max_packet_size = next(iter(clients.values())).max_packet_size
        simulated = {
            d.device_id: SimulatedDevice.create(d.device_id, d.device_type, seed=seed)
            for d in devices
        }
        _wait_for_the_bridge(clients[devices[0].device_id], simulated[devices[0].device_id])
        sent = _send(broker, probes, clients, simulated, rate, report, progress)
        _wait(lambda: all(c.settled() for c in clients.values()), 120.0, services)
        _count(sent, bootstrap, topics, report, services, drain_timeout_s)
    return report


def _wait_for_the_bridge(client: _DeviceClient, device: SimulatedDevice) -> None:
    """Until the bridge has subscribed: a status message that someone subscribes to is acked
    "Success" (before, "No matching subscribers"). It goes to the status topic like any other."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        birth = device.birth(datetime.now(UTC)).model_dump_json(exclude_none=True).encode()
        mid = client.publish(mqtt_topic(client.device_id, "status"), birth)
        if not _wait(partial(operator.contains, client.acks, mid), 10.0):
            break
        if client.acks[mid] == _SUCCESS:
            return
        time.sleep(0.5)
    raise MqttError("the bridge did not subscribe within 60 s (no subscriber for device topics)")


def _packet_size(topic: str, payload: bytes) -> int:
    """The size of a QoS 1 PUBLISH (MQTT v5, no properties): what a broker's
    ``max_packet_size`` is compared with."""
    remaining = 2 + len(topic.encode()) + 2 + 1 + len(payload)
    length_bytes = 1 + (remaining >= 128) + (remaining >= 16_384) + (remaining >= 2_097_152)
    return 1 + length_bytes + remaining


def _over_the_limit(broker: Broker, probe: Probe) -> _Sent:
    """A probe over the broker's packet limit, sent on a connection of its own: the broker
    drops the connection that sends it, and the device's own connection must not be the one
    (paho would send it again on reconnecting, and be dropped again). Mosquitto says "Packet
    too large" (DISCONNECT 149); a client still writing a large packet when the broker closes
    the socket notices the reset first (paho: "Unspecified error", 128)."""
    client = _DeviceClient(broker, probe.device_id)
    client.connect()
    try:
        client.publish(probe.topic, probe.payload)
        _wait(lambda: client.dropped is not None, 10.0)
    finally:
        client.close()
    return _Sent(None, -1, probe, dropped=client.dropped)


def _send(
    broker: Broker,
    probes: Sequence[Probe],
    clients: Mapping[str, _DeviceClient],
    simulated: Mapping[str, SimulatedDevice],
    rate: float,
    report: FuzzReport,
    progress: Callable[[float], None] | None,
) -> list[_Sent]:
    """Each probe, then a valid reading of its device; paced to ``rate`` messages a second."""
    sent: list[_Sent] = []
    limit = report.broker_max_packet_size
    interval = 1.0 / rate
    started = next_at = time.perf_counter()
    step = max(1, len(probes) // 100)
    for i, probe in enumerate(probes):
        client = clients[probe.device_id]
        if limit is not None and _packet_size(probe.topic, probe.payload) > limit:
            sent.append(_over_the_limit(broker, probe))
        else:
            sent.append(_Sent(client, client.publish(probe.topic, probe.payload), probe))
        report.categories[probe.category]["sent"] += 1
        device = simulated[probe.device_id]
        wall = datetime.now(UTC)
        topic = mqtt_topic(device.device_id, "telemetry")
        payload = device.telemetry_payload(float(device.seq), 1.0, wall)
        expected = route(topic, payload, now=wall)
        if expected.reason is not None:  # the simulator broke the contract: say so
            report.note("valid reading refused by the bridge's own rules", expected.reason)
        mid = client.publish(topic, payload)
        sent.append(_Sent(client, mid, None, device.device_id, device.seq - 1, expected.value))
        report.valid["sent"] += 1
        next_at += 2 * interval
        ahead = next_at - time.perf_counter()
        if ahead > 0.002:
            time.sleep(ahead)
        if progress is not None and i % step == 0:
            progress(i / len(probes))
    report.publish_s = round(time.perf_counter() - started, 2)
    report.messages_per_s = round(len(sent) / max(report.publish_s, 1e-9), 1)
    if progress is not None:
        progress(1.0)
    return sent


def _wait(done: Callable[[], bool], timeout: float, services: Sequence[Watched] = ()) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline or not all(s.alive() for s in services):
            return done()
        time.sleep(0.05)
    return True


def _read(
    bootstrap: str,
    topics: Sequence[str],
    enough: Callable[[dict[str, list[Any]]], bool],
    timeout_s: float,
    services: Sequence[Watched],
) -> dict[str, list[Any]]:
    """Every record of ``topics`` from the start, until ``enough`` (and 2 s more, to see
    duplicates), nothing new for ``timeout_s``, or a watched service died."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    records: dict[str, list[Any]] = {t: [] for t in topics}
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        last_new = time.monotonic()
        extra_until: float | None = None
        while True:
            now = time.monotonic()
            if extra_until is None and enough(records):
                extra_until = now + 2.0
            if extra_until is not None and now > extra_until:
                break
            if now - last_new > timeout_s or not all(s.alive() for s in services):
                break
            for partition, batch in consumer.poll(timeout_ms=300).items():
                records[partition.topic].extend(batch)
                last_new = time.monotonic()
    finally:
        consumer.close()
    return records


def _count(
    sent: list[_Sent],
    bootstrap: str,
    topics: dict[str, str],
    report: FuzzReport,
    services: Sequence[Watched],
    timeout_s: float,
) -> None:
    now = datetime.now(UTC)
    valid = [s for s in sent if s.probe is None]
    owed = [s for s in sent if s.probe is not None and not s.probe.refused and s.client]
    forwarded = [topics[c] for c in ("telemetry", "status", "reported", "ack")]
    started = time.monotonic()
    records = _read(
        bootstrap,
        [*forwarded, topics["dlq"]],
        lambda r: len(r[topics["telemetry"]]) >= len(valid) and len(r[topics["dlq"]]) >= len(owed),
        timeout_s,
        services,
    )
    report.drain_s = round(time.monotonic() - started, 1)
    _count_letters(sent, records[topics["dlq"]], report)
    _count_refused(sent, records, topics, report, now)
    _count_valid(valid, records[topics["telemetry"]], report)


def _letter_key(topic: str, payload: bytes, size: int) -> tuple[str, bytes, int]:
    """What a letter and the probe it answers share: the topic, the bytes the letter keeps
    (all, or the first 64 KiB) and the payload's size (given in a cut letter's reason: two
    payloads may begin with the same 64 KiB)."""
    return topic, hashlib.sha256(payload[:MAX_LETTER_PAYLOAD_BYTES]).digest(), size


def _count_letters(sent: list[_Sent], dlq: list[Any], report: FuzzReport) -> None:
    """Each probe the bridge owes a letter against the letters, by topic and bytes."""
    letters: dict[tuple[str, bytes, int], list[dict[str, Any]]] = defaultdict(list)
    for record in dlq:
        letter = orjson.loads(record.value)
        letter["key"] = record.key
        payload = base64.b64decode(letter["payload_base64"])
        cut = _KEPT.search(letter["reason"] or "")
        size = int(cut.group(2)) if cut else len(payload)
        letters[_letter_key(letter["mqtt_topic"], payload, size)].append(letter)
    for item in sent:
        probe = item.probe
        if probe is None:
            continue
        row = report.categories[probe.category]
        mine = letters.get(_letter_key(probe.topic, probe.payload, len(probe.payload)))
        letter = mine.pop() if mine else None
        code = item.code()
        if probe.refused:
            if letter is not None:
                row["leaked"] += 1
                report.note("refused by the broker, yet dead-lettered", probe.topic)
            continue
        if letter is None:
            if item.dropped is not None:  # over the broker's limit: the sender was dropped
                row["refused"] += 1
            elif code == _NOT_AUTHORIZED:
                row["refused"] += 1
                report.note("refused by the broker, owed a dead letter", probe.topic)
            else:
                row["lost"] += 1
                answer = f"PUBACK {code}" if item.client else f"dropped with {item.dropped}"
                report.note(
                    "not dead-lettered",
                    f"{probe.category} {probe.topic} ({answer}, {len(probe.payload)} bytes) "
                    f"{probe.payload[:100]!r}",
                )
            continue
        row["dead_lettered"] += 1
        problem = _letter_problem(probe, letter)
        if problem is not None:
            row["wrong_rule"] += 1
            report.note(f"letter of {probe.category}", problem)
    report.unexpected_letters = sum(len(v) for v in letters.values())


def _letter_problem(probe: Probe, letter: dict[str, Any]) -> str | None:
    """What is wrong with ``probe``'s dead letter, if anything."""
    reason: str = letter["reason"] or ""
    rule = _RULE.search(reason)
    if rule is None:
        return f"no [rule] at the end of {reason!r}"
    if probe.rules and rule.group(1) not in probe.rules:
        return f"rule {rule.group(1)} not in {sorted(probe.rules)}: {reason}"
    if letter["device_id"] != probe.device_id or letter["key"] != probe.device_id.encode():
        return f"keyed by {letter['key']!r}, device {letter['device_id']!r}: {reason}"
    cut = len(probe.payload) > MAX_LETTER_PAYLOAD_BYTES
    if cut != bool(_KEPT.search(reason)):
        return f"a letter of {len(probe.payload)} bytes whose reason says otherwise: {reason}"
    return None


def _count_refused(
    sent: list[_Sent],
    records: dict[str, list[Any]],
    topics: dict[str, str],
    report: FuzzReport,
    now: datetime,
) -> None:
    """Each probe the broker owes a refusal: refused (PUBACK), and on no topic the bridge
    writes (where it would be had it been let through: its payload is valid for its topic)."""
    seen = {(topic, r.value) for topic, batch in records.items() for r in batch}
    for item in sent:
        probe = item.probe
        if probe is None or not probe.refused:
            continue
        row = report.categories[probe.category]
        code = item.code()
        where = _expected_on_kafka(probe, now, topics)
        if where is not None and where in seen:
            row["leaked"] += 1
            report.note("refused category forwarded to Kafka", probe.topic)
        elif code == _NOT_AUTHORIZED:
            row["refused"] += 1
        else:
            row["leaked"] += 1
            report.note(f"broker answered {code} (not 'Not authorized')", probe.topic)


def _count_valid(valid: list[_Sent], telemetry: list[Any], report: FuzzReport) -> None:
    arrived: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    order: dict[str, list[int]] = defaultdict(list)
    for record in telemetry:
        reading = orjson.loads(record.value)
        arrived[reading["device_id"], reading["seq"]].append(record.value)
        order[reading["device_id"]].append(reading["seq"])
        if record.key != reading["device_id"].encode():
            report.note("telemetry keyed by another device", repr(record.key))
    for item in valid:
        if item.code() not in (_SUCCESS, _NO_SUBSCRIBERS):
            report.valid["not_acked"] += 1
        copies = arrived.get((item.device_id, item.seq), [])
        if not copies:
            report.valid["missing"] += 1
            report.note("valid reading missing", f"{item.device_id} seq {item.seq}")
        elif copies[0] != item.expected:
            report.valid["altered"] += 1
            report.note("valid reading altered", f"{copies[0]!r} != {item.expected!r}")
        else:
            report.valid["arrived"] += 1
        report.valid["duplicates"] += max(0, len(copies) - 1)
    report.valid["out_of_order"] = sum(
        sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a) for seqs in order.values()
    )


# --- on a local stack of its own ---------------------------------------------------------------


def fuzz_stack(
    *,
    count: int = 10_000,
    devices: int = 10,
    rate: float = 1000.0,
    seed: int = 0,
    worker: bool = True,
    logs: Path | None = None,
    progress: Callable[[float], None] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """``count`` probes through the real bridge (and a worker behind it) on a local stack of
    its own, as :func:`run_fuzz` counts them; the figures, with whether any service crashed.
    The services' logs stay in ``logs`` (default ``.twin-stream/fuzz/<when>``)."""
    logs = logs or Path(".twin-stream/fuzz") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    fleet_ = fleet(devices)
    say(f"drawing {count:,} probes (hypothesis, seed {seed})")
    started = time.perf_counter()
    probes = make_probes(fleet_, datetime.now(UTC), count, seed)
    drawn_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="twin-fuzz-") as tmp:
        root = Path(tmp)
        stack = Stack(
            root / "stack",
            services=["mosquitto", "kafka"],
            device_ids=[d.device_id for d in fleet_],
        )
        say("starting Mosquitto and Kafka")
        state = stack.up()
        try:
            bootstrap = state.url("kafka")
            topics = kafka_topics("twin")
            ensure_topics(bootstrap, 6, {}, topics)
            env = {"TWIN_STACK__DIR": str(root / "stack")}
            broker = Broker(
                "127.0.0.1",
                state.services["mosquitto"].port,
                {a.username: a.password for a in stack.accounts},
            )
            with ExitStack() as running:
                services = [
                    running.enter_context(watched("bridge", ["bridge"], env, logs / "bridge.log"))
                ]
                if worker:
                    port = free_port()
                    args = ["worker", "--web-port", str(port), "--data-dir", str(root / "w")]
                    services.append(
                        running.enter_context(watched("worker", args, env, logs / "worker.log"))
                    )
                    say("waiting for the worker to be ready (GET /ready)")
                    _wait_ready(port, services[-1])
                say(f"sending {count:,} probes and {count:,} valid readings at {rate:g} msgs/s")
                report = run_fuzz(
                    broker,
                    bootstrap,
                    topics,
                    probes,
                    fleet_,
                    rate=rate,
                    seed=seed,
                    progress=progress,
                    services=services,
                )
            figures = _figures(report, services, count, devices, rate, seed, drawn_s)
        finally:
            stack.down()
    return figures


def _wait_ready(port: int, service: Watched, timeout: float = 180.0) -> None:
    """Until the worker's ``GET /ready`` answers 200: partitions assigned, streams running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise ServiceError(service.name, f"exited while starting: {log_tail(service.log)}")
        try:
            if http_get(f"http://127.0.0.1:{port}/ready")[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise ServiceError(service.name, f"not ready within {timeout:g} s: {log_tail(service.log)}")


def _figures(
    report: FuzzReport,
    services: Sequence[Watched],
    count: int,
    devices: int,
    rate: float,
    seed: int,
    drawn_s: float,
) -> dict[str, Any]:
    crashes = [c for s in services for c in s.crashes()]
    bad, valid = report.totals(), report.valid
    bridge_log = services[0].log.read_text(errors="replace") if services else ""
    stopped = re.search(r"(\d+) received, (\d+) forwarded, (\d+) dead-lettered", bridge_log)
    return {
        "count": count,
        "devices": devices,
        "rate": rate,
        "seed": seed,
        "draw_s": round(drawn_s, 1),
        **report.to_json(),
        # every bad payload dead-lettered (right rule) or refused, every valid reading arrived
        # once and in order, no crash
        "passed": not crashes
        and bad["lost"] == bad["leaked"] == bad["wrong_rule"] == 0
        and valid["arrived"] == valid["sent"]
        and valid["duplicates"] == valid["out_of_order"] == 0,
        "crashes": len(crashes),
        "crash_details": crashes,
        "services": {s.name: s.summary() for s in services},
        "bridge_counters": dict(
            zip(("received", "forwarded", "dead_lettered"), map(int, stopped.groups()), strict=True)
        )
        if stopped
        else None,
        "limits": {
            "bridge_payload_bytes": MAX_PAYLOAD_BYTES,
            "letter_payload_bytes": MAX_LETTER_PAYLOAD_BYTES,
            "broker_max_packet_size": report.broker_max_packet_size,
        },
        "dead_lettered_categories": list(DEAD_LETTERED),
        "machine": machine_info(),
    }
