"""The exception tree and its edges: each library's exception comes out as one of ours, with the
original as ``__cause__``; a record that cannot be processed goes to a dead letter with the
reason.

The edges are driven by the real libraries against loopback sockets: a port nothing listens on
(refused), a port that accepts connections and never answers (Kafka: kafka-python 3.0 does not
close the socket of a refused connection, which the leak checks would rightly report), and a
fake MQTT broker that refuses the login.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import pickle
import socket
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import certifi
import confluent_kafka
import orjson
import pytest
import urllib3.exceptions
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaServerError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import errors as kafka_errors
from kafka.structs import TopicPartition

from tests.unit.conftest import Sent, put
from twin_stream import errors
from twin_stream.bridge.routing import route
from twin_stream.bridge.uplink import MqttEndpoint, Uplink
from twin_stream.config import KafkaSettings
from twin_stream.domain.detection import detector
from twin_stream.domain.detection.detector import DeviceDetector
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.domain.records import DeadLetter
from twin_stream.domain.topics import device_id_from_mqtt_topic, mqtt_topic
from twin_stream.errors import (
    ConfigError,
    GrafanaError,
    KafkaError,
    KafkaUnavailable,
    MqttError,
    PayloadRejected,
    StateError,
    StateVersionMismatch,
    StoreError,
    TwinStreamError,
    map_exceptions,
)
from twin_stream.grafana.push import push
from twin_stream.kafka import (
    close_librdkafka_producer,
    ensure_topics,
    librdkafka_edge,
    librdkafka_error,
    make_consumer,
    make_librdkafka_producer,
    make_producer,
)
from twin_stream.kafka_security import in_librdkafka_names, kafka_python_options, librdkafka_options
from twin_stream.sink.writer import InfluxTarget, Sink, write_points
from twin_stream.worker.processing import DeviceState

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
RAW = (
    b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":1,'
    b'"ts":"2026-11-24T12:00:00Z","fw":"1.0.0","metrics":{"motor_current":0.3}}'
)

# --- the tree and map_exceptions -----------------------------------------------------------


def test_every_class_of_the_tree_is_a_twin_stream_error_with_a_one_line_docstring() -> None:
    classes = [c for name in errors.__all__ if inspect.isclass(c := getattr(errors, name))]
    for cls in classes:
        assert issubclass(cls, TwinStreamError), cls
        doc = inspect.getdoc(cls)
        assert doc and "\n" not in doc.strip(), cls
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} not in the diagram"


def test_state_version_mismatch_moved_into_the_tree_and_is_no_value_error() -> None:
    assert detector.StateVersionMismatch is StateVersionMismatch  # the old import still works
    assert issubclass(StateVersionMismatch, StateError)
    assert not issubclass(StateVersionMismatch, ValueError)
    assert issubclass(KafkaUnavailable, KafkaError)


def test_map_exceptions_translates_and_chains() -> None:
    original = ConnectionRefusedError(111, "Connection\n  refused")
    with pytest.raises(StoreError) as raised, map_exceptions({OSError: StoreError}, "influxdb x"):
        raise original
    assert str(raised.value) == "influxdb x: [Errno 111] Connection refused"  # one line
    assert raised.value.__cause__ is original


def test_the_first_matching_entry_wins() -> None:
    mapping: dict[type[BaseException], type[TwinStreamError]] = {
        kafka_errors.RetriableError: KafkaUnavailable,
        kafka_errors.KafkaError: KafkaError,
    }
    with pytest.raises(KafkaUnavailable), map_exceptions(mapping, "k"):
        raise kafka_errors.KafkaTimeoutError("Unable to bootstrap")
    with pytest.raises(KafkaError) as raised, map_exceptions(mapping, "k"):
        raise kafka_errors.TopicAuthorizationFailedError("no")
    assert type(raised.value) is KafkaError
    # A base listed first wins over a subclass listed after it.
    with (
        pytest.raises(ConfigError),
        map_exceptions({OSError: ConfigError, TimeoutError: MqttError}, "m"),
    ):
        raise TimeoutError("slow")


def test_unmapped_exceptions_and_the_trees_own_pass_through_unchanged() -> None:
    error = KeyError("x")
    with pytest.raises(KeyError) as raised, map_exceptions({OSError: StoreError}, "c"):
        raise error
    assert raised.value is error
    ours = ConfigError("already translated")
    with pytest.raises(ConfigError) as kept, map_exceptions({Exception: StoreError}, "c"):
        raise ours
    assert kept.value is ours and kept.value.__cause__ is None
    with map_exceptions({Exception: StoreError}, "c"):
        pass  # nothing raised, nothing mapped


def test_an_exception_without_a_message_is_named_by_its_type() -> None:
    with pytest.raises(MqttError, match=r"^mqtt h:1: TimeoutError$"):
        with map_exceptions({OSError: MqttError}, "mqtt h:1"):
            raise TimeoutError()


# --- loopback helpers ----------------------------------------------------------------------


def _closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


# --- Kafka ---------------------------------------------------------------------------------

FAST = {"bootstrap_timeout_ms": 300}


def test_make_producer_without_a_broker_is_kafka_unavailable(silent_port: int) -> None:
    bootstrap = f"127.0.0.1:{silent_port}"
    with pytest.raises(KafkaUnavailable, match="making a producer") as raised:
        make_producer(bootstrap, dict(FAST))
    assert bootstrap in str(raised.value)
    assert isinstance(raised.value.__cause__, kafka_errors.KafkaTimeoutError)
    # (the leak checks of tests/conftest.py also hold: its IO thread was closed)


def test_ensure_topics_and_make_consumer_without_a_broker_are_kafka_unavailable(
    silent_port: int,
) -> None:
    bootstrap = f"127.0.0.1:{silent_port}"
    with pytest.raises(KafkaUnavailable, match="creating topics") as raised:
        ensure_topics(bootstrap, 1, dict(FAST), {"telemetry": "t"})
    assert isinstance(raised.value.__cause__, kafka_errors.KafkaError)
    with pytest.raises(KafkaUnavailable, match="consumer of g"):
        make_consumer(bootstrap, "t", group_id="g", options=dict(FAST))


def test_an_option_kafka_python_does_not_take_is_a_config_error() -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ConfigError, match="no_such_option"):
        make_producer(bootstrap, {"no_such_option": 1})
    with pytest.raises(ConfigError, match="no_such_option") as raised:
        ensure_topics(bootstrap, 1, {"no_such_option": 1})
    assert isinstance(raised.value.__cause__, kafka_errors.KafkaConfigurationError)


def test_the_bridges_producer_without_a_broker_is_kafka_unavailable(silent_port: int) -> None:
    bootstrap = f"127.0.0.1:{silent_port}"
    with pytest.raises(KafkaUnavailable, match="making the bridge's producer") as raised:
        make_librdkafka_producer(bootstrap, {}, connect_timeout_s=0.3)
    assert bootstrap in str(raised.value) and str(raised.value).endswith("[_TRANSPORT]")
    assert isinstance(raised.value.__cause__, confluent_kafka.KafkaException)


def test_an_option_librdkafka_does_not_take_is_a_config_error() -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ConfigError, match='"no.such.option".*_INVALID_ARG') as raised:
        make_librdkafka_producer(bootstrap, {"no.such.option": 1})
    assert isinstance(raised.value.__cause__, confluent_kafka.KafkaException)
    with pytest.raises(ConfigError, match="security.protocol"):
        make_librdkafka_producer(bootstrap, {"security.protocol": "carrier-pigeon"})
    # kafka-python's options reach librdkafka translated, and only those that have a meaning there
    with pytest.raises(ConfigError, match="bootstrap_timeout_ms"):
        in_librdkafka_names({**FAST, "security_protocol": "SSL"})


def test_the_kafka_settings_in_librdkafkas_names_are_those_in_kafka_pythons() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="bridge",
        sasl_password="secret",  # type: ignore[arg-type]
        ssl_cafile=Path(certifi.where()),  # librdkafka reads it when the client is made
    )
    assert in_librdkafka_names(kafka_python_options(settings)) == librdkafka_options(settings)
    assert librdkafka_options(settings)["sasl.password"] == "secret"
    assert in_librdkafka_names(kafka_python_options(KafkaSettings())) == {
        "security.protocol": "PLAINTEXT"
    }
    close_librdkafka_producer(  # librdkafka takes every one of them
        confluent_kafka.Producer(librdkafka_options(settings)), timeout=0
    )


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        (confluent_kafka.KafkaError._ALL_BROKERS_DOWN, KafkaUnavailable),
        (confluent_kafka.KafkaError._MSG_TIMED_OUT, KafkaUnavailable),
        (confluent_kafka.KafkaError.NOT_ENOUGH_REPLICAS, KafkaUnavailable),  # retriable
        (confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError),
        (confluent_kafka.KafkaError._INVALID_ARG, ConfigError),
    ],
)
def test_a_librdkafka_error_is_classed_by_its_code(code: int, ours: type[TwinStreamError]) -> None:
    error = confluent_kafka.KafkaError(code, retriable=code == 19)
    assert librdkafka_error(error) is ours
    with pytest.raises(ours) as raised, librdkafka_edge("kafka b:9092: producing"):
        raise confluent_kafka.KafkaException(error)
    assert type(raised.value) is ours
    assert str(raised.value).startswith("kafka b:9092: producing: ")
    assert isinstance(raised.value.__cause__, confluent_kafka.KafkaException)


def test_a_fatal_librdkafka_error_is_a_kafka_error_even_if_retriable() -> None:
    fatal = confluent_kafka.KafkaError(
        confluent_kafka.KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True, retriable=True
    )
    assert librdkafka_error(fatal) is KafkaError


# --- MQTT ----------------------------------------------------------------------------------


def _uplink(port: int) -> Uplink:
    endpoint = MqttEndpoint("127.0.0.1", port, "bridge", "pw", client_id="test-errors")
    return Uplink(endpoint, producer=mock.Mock())


def test_a_broker_that_is_not_there_is_an_mqtt_error() -> None:
    port = _closed_port()
    with pytest.raises(MqttError, match=f"mqtt 127.0.0.1:{port}: .*refused") as raised:
        _uplink(port).start()
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)


class RefusingBroker:
    """A fake MQTT 5 broker that answers every CONNECT with CONNACK 0x87 (not authorized)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.logins = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="refusing-broker")

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                if conn.recv(1024)[:1] == b"\x10":  # CONNECT
                    self.logins += 1
                    conn.sendall(b"\x20\x03\x00\x87\x00")  # CONNACK, reason 0x87, no properties

    def __enter__(self) -> RefusingBroker:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()


def test_a_refused_login_is_an_mqtt_error_and_nothing_is_left_running() -> None:
    with RefusingBroker() as broker:
        uplink = _uplink(broker.port)
        with pytest.raises(MqttError, match="login as 'bridge' refused: Not authorized"):
            uplink.start(timeout=5)
        assert broker.logins >= 1
        assert not uplink.connected.is_set()


def test_a_broker_that_never_answers_the_login_is_an_mqtt_error(silent_port: int) -> None:
    with pytest.raises(MqttError, match="no answer to the login within 0.3 s"):
        _uplink(silent_port).start(timeout=0.3)


# --- InfluxDB ------------------------------------------------------------------------------


def test_a_write_influxdb_does_not_take_is_a_store_error() -> None:
    target = InfluxTarget(f"http://127.0.0.1:{_closed_port()}", "token", "org", "twin")
    client = InfluxDBClient(url=target.url, token=target.token, org=target.org, timeout=2000)
    try:
        with pytest.raises(StoreError, match=r"influxdb http://127.0.0.1:\d+ \(bucket twin\)") as e:
            write_points(
                client.write_api(write_options=SYNCHRONOUS), target, [Point("m").field("x", 1)]
            )
    finally:
        client.close()
    assert isinstance(e.value.__cause__, urllib3.exceptions.HTTPError)


class FakeConsumer:
    """Hands out the records it was given once, then sets ``stop``; records commits."""

    def __init__(self, records: dict[Any, list[Any]], stop: threading.Event) -> None:
        self.records, self.stop = records, stop
        self.commits = 0
        self.closed = False

    def poll(self, **_: Any) -> dict[Any, list[Any]]:
        records, self.records = self.records, {}
        if not records:
            self.stop.set()
        return records

    def commit(self) -> None:
        self.commits += 1

    def assignment(self) -> set[Any]:
        return set()

    def pause(self, *_: Any) -> None:
        pass

    def paused(self) -> set[Any]:
        return set()

    def resume(self, *_: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _record(offset: int, value: bytes, key: bytes = b"pump-0001") -> Any:
    return SimpleNamespace(offset=offset, value=value, key=key, timestamp=1795521600000)


def _sink(records: list[Any], stop: threading.Event) -> tuple[Sink, FakeConsumer]:
    tp = TopicPartition("twin.telemetry", 3)
    consumer = FakeConsumer({tp: records}, stop)
    target = InfluxTarget(f"http://127.0.0.1:{_closed_port()}", "token", "org", "twin")
    sink = Sink(consumer, target, {"twin.telemetry": "telemetry"}, sleep=lambda _: None)  # type: ignore[arg-type]
    return sink, consumer


def test_a_record_the_sink_cannot_write_becomes_a_dead_letter_point_committed_with_its_batch() -> (
    None
):
    stop = threading.Event()
    sink, consumer = _sink([_record(7, RAW), _record(8, b'{"device_id": "pump-0001"}')], stop)
    written: list[list[Point]] = []
    sink.write_api = mock.Mock(write=lambda **kw: written.append(list(kw["record"])))
    stats = sink.run(stop)
    assert stats.records == 2 and stats.bad_records == 1 and consumer.commits == 1
    (batch,) = written
    lines = [p.to_line_protocol() for p in batch]
    assert lines[0].startswith("telemetry,device_id=pump-0001")
    letter = batch[1]
    assert letter._name == "dead_letter"
    assert letter._tags == {"device_id": "pump-0001", "rule": "unwritable"}
    assert "discriminator 'device_type'" in letter._fields["reason"]
    assert letter._fields["mqtt_topic"] == "twin.telemetry"
    assert consumer.closed


def test_a_record_the_sink_cannot_write_goes_to_the_dead_letter_topic_before_its_commit() -> None:
    stop = threading.Event()
    sink, consumer = _sink([_record(7, RAW), _record(8, b'{"device_id": "pump-0001"}')], stop)
    events: list[str] = []
    sent: list[tuple[str, bytes | None, bytes]] = []

    class Letters:
        closed = False

        def send(self, topic: str, *, key: bytes | None, value: bytes) -> Any:
            sent.append((topic, key, value))
            return mock.Mock(get=lambda timeout: events.append("letter confirmed"))

        def close(self) -> None:
            Letters.closed = True

    sink.letters, sink.dlq_topic = Letters(), "twin.dlq"  # type: ignore[assignment]
    committed = consumer.commit
    consumer.commit = lambda: (events.append("commit"), committed())[1]  # type: ignore[method-assign]
    written: list[list[Point]] = []
    sink.write_api = mock.Mock(write=lambda **kw: written.append(list(kw["record"])))
    stats = sink.run(stop)
    assert stats.bad_records == 1 and events == ["letter confirmed", "commit"]
    ((batch,),) = [written]
    assert [p._name for p in batch] == ["telemetry"]  # the letter is written once read back
    ((topic, key, value),) = sent
    letter = DeadLetter.model_validate_json(value)
    assert (topic, key, letter.device_id) == ("twin.dlq", b"pump-0001", "pump-0001")
    assert letter.mqtt_topic == "twin.telemetry" and letter.reason.endswith("[unwritable]")
    assert base64.b64decode(letter.payload_base64) == b'{"device_id": "pump-0001"}'
    assert Letters.closed and consumer.closed


def test_the_sink_waits_out_a_kafka_outage_instead_of_ending() -> None:
    stop = threading.Event()
    sink, consumer = _sink([_record(7, RAW)], stop)
    outage = [kafka_errors.KafkaConnectionError("broker gone")] * 3
    polls = consumer.poll

    def poll(**kw: Any) -> Any:
        if outage:
            raise outage.pop()
        return polls(**kw)

    consumer.poll = poll  # type: ignore[method-assign]
    commits = [kafka_errors.KafkaTimeoutError("no answer")]
    committed = consumer.commit

    def commit() -> None:
        if commits:
            raise commits.pop()
        committed()

    consumer.commit = commit  # type: ignore[method-assign]
    written: list[list[Point]] = []
    sink.write_api = mock.Mock(write=lambda **kw: written.append(list(kw["record"])))
    stats = sink.run(stop)  # returns, rather than raising KafkaUnavailable
    assert not outage and stats.records == 1 and len(written) == 1
    assert not commits and consumer.closed  # the failed commit was logged, not fatal


def test_a_kafka_refusal_still_ends_the_sink() -> None:
    stop = threading.Event()
    sink, consumer = _sink([], stop)

    def poll(**_: Any) -> Any:
        raise kafka_errors.TopicAuthorizationFailedError("not yours")

    consumer.poll = poll  # type: ignore[method-assign]
    with pytest.raises(KafkaError, match="not yours"):
        sink.run(stop)


def test_a_sink_stopped_during_an_outage_raises_store_error_and_commits_nothing() -> None:
    stop = threading.Event()
    sink, consumer = _sink([_record(7, RAW)], stop)
    with pytest.raises(StoreError) as raised:
        sink.run(stop)  # InfluxDB's port is closed; the fake consumer sets stop when drained
    assert isinstance(raised.value.__cause__, urllib3.exceptions.HTTPError)
    assert consumer.commits == 0 and sink.stats.write_failures >= 1 and consumer.closed


# --- Grafana -------------------------------------------------------------------------------

VARIABLES = {
    "TWIN_INFLUX__URL": "http://influxdb:8086",
    "TWIN_INFLUX__BUCKET": "twin",
    "TWIN_INFLUX__TOKEN": "s3cret",
    "TWIN_GRAFANA__ALERT_WEBHOOK_URL": "http://hooks.example/twin",
}


def test_grafanas_refusal_is_a_grafana_error_naming_the_object() -> None:
    api = mock.Mock()
    refusal = GrafanaServerError(500, {"message": "db locked"}, "Server Error 500: db locked")
    api.folder.get_folder.side_effect = refusal
    with pytest.raises(GrafanaError, match="grafana: folder: Server Error 500: db locked") as e:
        push(api, VARIABLES)
    assert e.value.__cause__ is refusal


def test_a_404_on_read_means_create_and_a_4xx_on_write_is_a_grafana_error() -> None:
    api = mock.Mock()
    api.folder.get_folder.side_effect = GrafanaClientError(404, {}, "Client Error 404: not found")
    api.folder.create_folder.side_effect = GrafanaClientError(403, {}, "Client Error 403: denied")
    with pytest.raises(GrafanaError, match="folder: Client Error 403: denied"):
        push(api, VARIABLES)
    api.folder.create_folder.assert_called_once()


def test_a_grafana_that_is_not_there_is_a_grafana_error() -> None:
    api = GrafanaApi.from_url(f"http://127.0.0.1:{_closed_port()}", credential="token")
    with pytest.raises(GrafanaError, match="grafana: folder: .*[Rr]efused") as raised:
        push(api, VARIABLES)
    assert isinstance(raised.value.__cause__, OSError)  # the HTTP library's, let through


def test_push_takes_its_variables_from_the_caller_and_names_a_missing_one() -> None:
    api = mock.Mock()
    missing = {k: v for k, v in VARIABLES.items() if k != "TWIN_INFLUX__TOKEN"}
    with mock.patch.dict("os.environ", VARIABLES):  # the environment is not read
        with pytest.raises(ConfigError, match="variable TWIN_INFLUX__TOKEN is not set"):
            push(api, missing)
    assert api.mock_calls == []  # nothing was sent
    assert list(inspect.signature(push).parameters) == ["api", "variables"]


# --- detector and monitor state ------------------------------------------------------------


def test_a_corrupted_detector_blob_is_a_state_error() -> None:
    data = DeviceDetector("pump-0001", "infusion_pump").dumps()
    head, body = data[: len(data) - 40], data[len(data) - 40 :]
    for bad in (head, head + bytes(b ^ 0xFF for b in body)):
        with pytest.raises(StateError, match="^detector state: ") as raised:
            DeviceDetector.loads(bad)
        assert raised.value.__cause__ is not None
    for stale in (data.replace(b"ts-detector/", b"ts-detector/9"), data[:8], b"no header"):
        with pytest.raises(StateVersionMismatch):
            DeviceDetector.loads(stale)


def test_a_corrupted_monitor_blob_is_a_state_error_and_a_stale_one_a_mismatch() -> None:
    good = DeviceMonitor("pump-0001", "infusion_pump").dumps()
    for bad in (b"", good[:-5], zlib.compress(b"not a pickle"), zlib.compress(pickle.dumps(3))):
        with pytest.raises(StateError, match="^monitor state: "):
            DeviceMonitor.loads(bad)
    monitor = DeviceMonitor("pump-0001", "infusion_pump")
    monitor.policy.version = "policy/0"
    with pytest.raises(StateVersionMismatch, match="alert state: policy policy/0"):
        DeviceMonitor.loads(monitor.dumps())


def test_the_worker_learns_afresh_from_bad_models_but_refuses_a_bad_twin() -> None:
    twin = DeviceState.new("pump-0001").twin.model_dump_json().encode()
    assert DeviceState.restore("pump-0001", twin, b"garbage").monitor is None
    with pytest.raises(StateError, match="saved twin of pump-0001 does not restore"):
        DeviceState.restore("pump-0001", b'{"device_id": 7}', None)


# --- topics --------------------------------------------------------------------------------


def test_a_bad_device_id_or_topic_is_payload_rejected_and_routing_dead_letters_it() -> None:
    with pytest.raises(PayloadRejected) as raised:
        mqtt_topic("Pump 1", "telemetry")
    assert raised.value.field == "device_id" and raised.value.reason.endswith("[bad_device_id]")
    with pytest.raises(PayloadRejected, match=r"\[bad_topic\]$"):
        device_id_from_mqtt_topic("twin/v1/devices/a/b/c")
    routed = route("twin/v1/devices/+/telemetry", b"{}", now=NOW)
    assert routed.kafka_topic == "twin.dlq" and routed.key is None
    assert routed.reason and routed.reason.endswith("[bad_topic]")


# --- the worker's agents -------------------------------------------------------------------


def _letters(sent: Sent) -> list[dict[str, Any]]:
    return [orjson.loads(value) for name, _, value in sent if name == "twin.dlq"]


def test_a_record_whose_processing_fails_is_dead_lettered_and_the_next_one_processed(
    app: Any, sent: Sent
) -> None:
    status = (
        b'{"v":1,"device_id":"pump-0001","state":"online","reason":"birth","fw":"1.0.0",'
        b'"ts":"2026-11-24T12:00:00Z"}'
    )
    real = DeviceState.on_status
    calls = 0

    def flaky(self: DeviceState, raw: bytes, *, now: datetime) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("boom")
        return real(self, raw, now=now)

    with mock.patch.object(DeviceState, "on_status", flaky):
        asyncio.run(
            put(app.agents["twin-worker.status"], (b"pump-0001", status), (b"pump-0001", status))
        )
    (letter,) = _letters(sent)
    assert letter["reason"] == "(worker): KeyError: 'boom' [processing_failed]"
    assert letter["device_id"] == "pump-0001"
    assert base64.b64decode(letter["payload_base64"]) == status
    twins = [orjson.loads(v) for name, _, v in sent if name == "twin.twins"]
    assert twins and twins[-1]["connectivity"] == "online"  # the second one went through


def test_a_record_without_a_device_key_is_dead_lettered(app: Any, sent: Sent) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (None, RAW)))
    (letter,) = _letters(sent)
    assert letter["reason"].endswith("[missing_key]") and letter["device_id"] is None
    assert letter["mqtt_topic"] == "twin.telemetry"


def test_a_reading_that_is_no_json_object_is_dead_lettered_as_invalid(app: Any, sent: Sent) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (b"pump-0001", b"[1, 2]")))
    (letter,) = _letters(sent)
    assert letter["reason"] == "(payload): Input should be an object [dict_type]"
