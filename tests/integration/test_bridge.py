"""The bridge on the real Mosquitto and Kafka: every message once, in order, DLQ, downlink; and
on the real Mosquitto with a stand-in for Kafka that the test takes down, slows or breaks: nothing
is acked before Kafka confirmed it, nothing is lost, acks go out in receive order."""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import confluent_kafka
import orjson
import pytest
from kafka import KafkaProducer

from simulators.device import SimulatedDevice
from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from tests.conftest import MqttBroker, close, connect, running_bridge, wait_until
from tests.integration.conftest import read_topic
from twin_stream.bridge.mqtt_client import ReadAhead
from twin_stream.bridge.uplink import MqttEndpoint, Uplink
from twin_stream.domain.devices import fleet_device
from twin_stream.domain.events import Command
from twin_stream.domain.messages import DesiredSettings
from twin_stream.domain.topics import kafka_topics, mqtt_topic
from twin_stream.errors import KafkaError

pytestmark = pytest.mark.services


def test_every_reading_reaches_kafka_once_in_order_and_bad_input_goes_to_dlq(
    mosquitto: MqttBroker, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"t{unique}"
    topics = kafka_topics(prefix)
    plan = FleetPlan.generate(5, hours=1, fault_fraction=0.0, seed=31)
    passwords = {d.device_id: mosquitto.account(d.device_id).password for d in plan.devices}
    fleet = MqttFleet(
        plan,
        host="127.0.0.1",
        port=mosquitto.port,
        passwords=passwords,
        rate_hz=10.0,
        record_seqs=True,
    )
    bad_payloads = [
        b"{not json",
        b'{"v":1}' + b" " * 20_000,
        orjson.dumps(
            {
                "v": 1,
                "device_id": "pump-0001",
                "device_type": "infusion_pump",
                "seq": 1,
                "ts": datetime.now(UTC).isoformat(),
                "fw": "1.0.0",
                "metrics": {"motor_current": 99.0},
            }
        ),
    ]
    with running_bridge(mosquitto, kafka_bootstrap, prefix) as stats:
        stats_fleet = fleet.run(3.0)
        device, _ = connect(mosquitto.port, "pump-0001", passwords["pump-0001"])
        try:
            for payload in bad_payloads:
                device.publish(
                    mqtt_topic("pump-0001", "telemetry"), payload, qos=1
                ).wait_for_publish(5)
        finally:
            close(device)
        telemetry = read_topic(kafka_bootstrap, topics["telemetry"], stats_fleet.published)
        dlq = read_topic(kafka_bootstrap, topics["dlq"], 3)
    assert stats and stats[0].dead_lettered == 3
    seen: Counter[tuple[str, int]] = Counter()
    order: dict[str, list[int]] = defaultdict(list)
    for record in telemetry:
        body = orjson.loads(record.value)  # type: ignore[attr-defined]
        assert record.key.decode() == body["device_id"]  # type: ignore[attr-defined]
        seen[(body["device_id"], body["seq"])] += 1
        order[body["device_id"]].append(body["seq"])
    published = {(d, s) for d, seqs in stats_fleet.published_seqs.items() for s in seqs}
    assert set(seen) == published
    assert max(seen.values()) == 1
    assert all(seqs == sorted(seqs) for seqs in order.values())
    letters = [orjson.loads(r.value) for r in dlq]  # type: ignore[attr-defined]
    reasons = sorted(letter["reason"] for letter in letters)
    assert any("json_invalid" in r for r in reasons)
    assert any("too_large" in r for r in reasons)
    assert any(r.startswith("metrics.motor_current") for r in reasons)
    assert all(letter["mqtt_topic"] == mqtt_topic("pump-0001", "telemetry") for letter in letters)
    import base64

    assert {base64.b64decode(letter["payload_base64"]) for letter in letters} == set(bad_payloads)


def test_commands_reach_devices_as_retained_desired_state(
    mosquitto: MqttBroker, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"t{unique}"
    topics = kafka_topics(prefix)
    plan = FleetPlan.generate(2, hours=1, fault_fraction=0.0, seed=32)
    passwords = {d.device_id: mosquitto.account(d.device_id).password for d in plan.devices}
    with running_bridge(mosquitto, kafka_bootstrap, prefix):
        with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
            now = datetime.now(UTC)
            # The worker's desired documents (each the device's whole desired state): the
            # pump's second holds its first's change too. vent-0002 is not connected yet:
            # retained desired state waits for it.
            documents = [
                ("pump-0001", DesiredSettings(rate=50.0)),
                ("pump-0001", DesiredSettings(rate=55.0, sample_interval_s=0.5)),
                ("vent-0002", DesiredSettings(rate=16.0)),
            ]
            for version, (device_id, desired) in enumerate(documents, start=1):
                command = Command.create(device_id, "set_desired", desired=desired, now=now)
                producer.send(
                    topics["desired"],
                    key=device_id.encode(),
                    value=command.model_copy(update={"twin_version": version})
                    .model_dump_json()
                    .encode(),
                )
            producer.flush(10)
        # The desired state is retained: a device that subscribes later still gets it. The
        # downlink may publish the pump's two documents apart (one poll each), and the watcher
        # may subscribe between them: wait until the newest has reached MQTT, not for any.
        watcher, got = connect(mosquitto.port, "pump-0001", passwords["pump-0001"])
        try:
            watcher.subscribe(mqtt_topic("pump-0001", "desired"), qos=1)
            assert wait_until(
                lambda: any(orjson.loads(m.payload)["twin_version"] == 2 for m in got.messages),
                timeout=20,
            ), [m.payload for m in got.messages]
        finally:
            close(watcher)
        desired = orjson.loads(got.messages[-1].payload)
        assert desired["desired"] == {"rate": 55.0, "sample_interval_s": 0.5}  # the newest
        assert desired["command_id"] and desired["expires_at"] and desired["twin_version"] == 2
        fleet = MqttFleet(
            plan, host="127.0.0.1", port=mosquitto.port, passwords=passwords, rate_hz=2.0
        )
        fleet.run(3.0)
        reported = read_topic(kafka_bootstrap, topics["reported"], 4)
    applied = {
        (body["device_id"], body["settings"]["rate"])
        for body in (orjson.loads(r.value) for r in reported)  # type: ignore[attr-defined]
        if body.get("command_id")
    }
    assert applied == {("pump-0001", 55.0), ("vent-0002", 16.0)}
    # clean up the retained messages for other tests
    cleaner, _ = connect(mosquitto.port, mosquitto.bridge.username, mosquitto.bridge.password)
    try:
        for device in ("pump-0001", "vent-0002"):
            retained = cleaner.publish(mqtt_topic(device, "desired"), b"", qos=1, retain=True)
            retained.wait_for_publish(5)
    finally:
        close(cleaner)


# --- Kafka down, slow or broken: a stand-in for confluent-kafka's Producer ----------------------


class StandInKafka:
    """What the uplink uses of confluent-kafka's Producer. While ``up`` is False, records wait
    (librdkafka holds them while Kafka is down); its queue takes ``capacity`` records (then
    ``BufferError``); the next ``refuse`` records fail once; ``fatal`` fails them for good."""

    def __init__(self, capacity: int = 1000) -> None:
        self.up = False
        self.capacity = capacity
        self.refuse = 0
        self.fatal = False
        #: records whose value contains this are refused for good (too large for Kafka)
        self.too_large: bytes | None = None
        self.queue: list[tuple[str, bytes, Callable[[Any, Any], None]]] = []
        self.delivered: list[tuple[str, bytes]] = []
        self.buffer_errors = 0
        #: how often the uplink polled for delivery reports (each time it could have acked)
        self.polls = 0
        self.lock = threading.Lock()

    def produce(
        self, topic: str, value: bytes, key: bytes | None, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        with self.lock:
            if len(self.queue) >= self.capacity:
                self.buffer_errors += 1
                raise BufferError("Local: Queue full")
            self.queue.append((topic, value, on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        with self.lock:
            self.polls += 1
            served, self.queue = (self.queue, []) if self.up else ([], self.queue)
        if not served:
            time.sleep(timeout)
        for topic, value, on_delivery in served:
            if self.fatal:
                code = confluent_kafka.KafkaError._FATAL
                on_delivery(confluent_kafka.KafkaError(code, "fenced", fatal=True), None)
            elif self.too_large is not None and self.too_large in value:
                code = confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE
                on_delivery(confluent_kafka.KafkaError(code, "too large"), None)
            elif self.refuse:
                self.refuse -= 1
                code = confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
                on_delivery(confluent_kafka.KafkaError(code, "not now"), None)
            else:
                self.delivered.append((topic, value))
                on_delivery(None, None)
        return len(served)


def _readings(device_id: str, count: int) -> list[bytes]:
    device = SimulatedDevice.create(device_id, fleet_device(int(device_id[-4:]))[1], seed=7)
    now = datetime.now(UTC)
    return [device.telemetry_payload(float(i), 1.0, now) for i in range(count)]


@contextmanager
def uplink_on(
    broker: MqttBroker, kafka: StandInKafka, client_id: str, group: str
) -> Iterator[tuple[Uplink, list[int], list[int], list[str]]]:
    """A running uplink on the real broker and ``kafka``; the mids it received and acked, in
    order (retained status messages of other tests' devices among them: the broker sends those
    to a new subscription). Stopped without waiting for Kafka (as a crash would leave it)."""
    endpoint = MqttEndpoint(
        "127.0.0.1", broker.port, broker.bridge.username, broker.bridge.password, client_id
    )
    uplink = Uplink(endpoint, kafka, share_group=group, topics=kafka_topics(group))  # type: ignore[arg-type]
    received: list[int] = []
    topics: list[str] = []  # of each received message, in the same order
    acked: list[int] = []
    on_message, ack = uplink.client.on_message, uplink.client.ack

    def recording_on_message(client: Any, userdata: Any, message: Any) -> None:
        received.append(message.mid)
        topics.append(message.topic)
        on_message(client, userdata, message)  # type: ignore[misc]

    def recording_ack(mid: int, qos: int) -> Any:
        acked.append(mid)
        return ack(mid, qos)

    subscribed = threading.Event()
    uplink.client.on_message = recording_on_message
    uplink.client.ack = recording_ack  # type: ignore[method-assign]
    uplink.client.on_subscribe = lambda *_: subscribed.set()  # the SUBACK
    uplink.start()
    stop = threading.Event()
    thread = threading.Thread(target=uplink.run, args=(stop,), name="uplink")
    thread.start()
    try:
        assert uplink.connected.wait(10)
        assert subscribed.wait(10)
        yield uplink, received, acked, topics
    finally:
        stop.set()
        thread.join(10)
        uplink.stop(timeout=0)


def telemetry(kafka: StandInKafka) -> list[bytes]:
    return [value for topic, value in kafka.delivered if topic.endswith(".telemetry")]


def telemetry_queued(kafka: StandInKafka) -> list[bytes]:
    with kafka.lock:
        return [value for topic, value, _ in kafka.queue if topic.endswith(".telemetry")]


def _publish(broker: MqttBroker, device_id: str, payloads: list[bytes]) -> None:
    device, _ = connect(broker.port, device_id, broker.account(device_id).password)
    try:
        for payload in payloads:
            device.publish(mqtt_topic(device_id, "telemetry"), payload, qos=1).wait_for_publish(5)
    finally:
        close(device)


def test_while_kafka_is_down_nothing_is_acked_and_all_is_acked_in_order_once_it_is_back(
    mosquitto: MqttBroker, unique: str
) -> None:
    kafka = StandInKafka(capacity=8)  # most records wait for room in librdkafka's queue
    readings = _readings("pump-0001", 40)
    mine = mqtt_topic("pump-0001", "telemetry")
    with uplink_on(mosquitto, kafka, f"{unique}-up", unique) as (uplink, received, acked, topics):
        assert isinstance(uplink.client.socket(), ReadAhead)  # paho's socket is read ahead
        _publish(mosquitto, "pump-0001", [*readings[:20], b"{not json", *readings[20:]])
        # (counted by topic: other tests' retained statuses arrive when they will)
        assert wait_until(lambda: topics.count(mine) == 41), uplink.stats
        # Kafka is still down: however often the uplink looks for delivery reports now, nothing
        # may be acked, nothing dropped.
        polled = kafka.polls
        assert wait_until(lambda: kafka.polls >= polled + 20)
        assert acked == [] and uplink.stats.acked == 0
        assert kafka.buffer_errors > 0 and len(kafka.queue) == 8
        kafka.refuse = 3  # and when it comes back, it refuses the first three records once
        kafka.up = True
        assert wait_until(lambda: uplink.stats.acked == len(received) == uplink.stats.received)
    assert acked == received  # every message acked once, in the order it arrived
    assert uplink.stats.retries >= 3 and uplink.stats.dead_lettered == 1
    seqs = sorted(orjson.loads(value)["seq"] for value in telemetry(kafka))
    assert seqs == list(range(40))  # each once
    letters = [orjson.loads(value) for topic, value in kafka.delivered if topic.endswith(".dlq")]
    assert [letter["reason"].endswith("[json_invalid]") for letter in letters] == [True]


def test_a_bridge_that_dies_before_kafka_confirmed_loses_nothing(
    mosquitto: MqttBroker, unique: str
) -> None:
    readings = _readings("vent-0002", 10)
    down = StandInKafka()
    mine = mqtt_topic("vent-0002", "telemetry")
    with uplink_on(mosquitto, down, f"{unique}-up", unique) as (uplink, received, acked, topics):
        _publish(mosquitto, "vent-0002", readings)
        assert wait_until(lambda: topics.count(mine) == 10), uplink.stats
    # it dies with them all unconfirmed
    assert acked == [] and len(telemetry_queued(down)) == 10
    up = StandInKafka()
    up.up = True
    # Same client id, so the same session: the broker delivers the unacked messages again.
    with uplink_on(mosquitto, up, f"{unique}-up", unique) as (uplink, received, acked, _):
        assert wait_until(lambda: len(telemetry(up)) == 10 and acked == received)
    assert [orjson.loads(value)["seq"] for value in telemetry(up)] == list(range(10))


def test_a_fatal_producer_error_stops_the_uplink_with_nothing_acked() -> None:
    kafka = StandInKafka()
    kafka.up = kafka.fatal = True
    endpoint = MqttEndpoint("127.0.0.1", 1, "bridge", "pw", client_id="never-connects")
    uplink = Uplink(endpoint, kafka)  # type: ignore[arg-type]
    acks: list[int] = []
    uplink.client.ack = lambda mid, qos: acks.append(mid)  # type: ignore[assignment,method-assign,return-value]
    for mid, payload in enumerate(_readings("pump-0001", 3), start=1):
        uplink.inbox.put((mid, 1, mqtt_topic("pump-0001", "telemetry"), payload))
    with pytest.raises(KafkaError, match=r"the bridge's producer failed: fenced \[_FATAL\]"):
        for _ in range(10):
            uplink.step(timeout=0.01)
    assert acks == [] and uplink.stats.acked == 0


def test_a_record_on_twin_desired_that_is_no_document_is_dead_lettered_not_dropped(
    mosquitto: MqttBroker, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"t{unique}"
    topics = kafka_topics(prefix)
    with running_bridge(mosquitto, kafka_bootstrap, prefix):
        with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
            producer.send(topics["desired"], key=b"pump-0001", value=b'{"command_id": "x"}')
            producer.flush(10)
        letters = read_topic(kafka_bootstrap, topics["dlq"], 1)
    assert len(letters) == 1
    letter = orjson.loads(letters[0].value)  # type: ignore[attr-defined]
    assert letter["mqtt_topic"] == topics["desired"]
    assert letter["device_id"] == "pump-0001"
    assert letter["reason"].startswith("command_id: ")  # its first problem, and its rule
    assert letter["reason"].endswith("[string_pattern_mismatch]")
    assert base64.b64decode(letter["payload_base64"]) == b'{"command_id": "x"}'


def test_a_record_kafka_refuses_for_good_is_dead_lettered_and_holds_nothing_up() -> None:
    """Sent again, a record Kafka will never take (too large) would hold every message behind
    it for ever, acks going in order: its dead letter goes in its place."""
    kafka = StandInKafka()
    kafka.up = True
    endpoint = MqttEndpoint("127.0.0.1", 1, "bridge", "pw", client_id="never-connects")
    uplink = Uplink(endpoint, kafka)  # type: ignore[arg-type]
    acks: list[int] = []
    uplink.client.ack = lambda mid, qos: acks.append(mid)  # type: ignore[assignment,method-assign,return-value]
    payloads = _readings("pump-0001", 4)
    # the second reading's (its flow rate, as the forwarded record writes it)
    kafka.too_large = repr(orjson.loads(payloads[1])["metrics"]["flow_rate"]).encode()
    assert sum(kafka.too_large in p for p in payloads) == 1
    for mid, payload in enumerate(payloads, start=1):
        uplink.inbox.put((mid, 1, mqtt_topic("pump-0001", "telemetry"), payload))
    for _ in range(50):
        uplink.step(timeout=0.01)
        if len(acks) == 4:
            break
    assert acks == [1, 2, 3, 4]  # in order, none held up
    topics = [topic for topic, _ in kafka.delivered]  # the letter lands after its retry
    assert Counter(topics) == {"twin.telemetry": 3, "twin.dlq": 1}
    (letter,) = [orjson.loads(value) for topic, value in kafka.delivered if topic == "twin.dlq"]
    assert letter["mqtt_topic"] == mqtt_topic("pump-0001", "telemetry")
    assert letter["device_id"] == "pump-0001"
    assert letter["reason"].endswith("[kafka_refused]") and "too large" in letter["reason"]
    assert (
        orjson.loads(base64.b64decode(letter["payload_base64"]))["seq"]
        == orjson.loads(payloads[1])["seq"]
    )
    assert uplink.stats.dead_lettered == 1 and uplink.stats.forwarded == 3
