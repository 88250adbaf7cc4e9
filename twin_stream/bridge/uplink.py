"""Uplink: device messages from MQTT into Kafka, at least once, in order, with backpressure.

* One bridge subscribes plainly to every device's channels, in a persistent session (MQTT 5,
  ``clean_start=False``, a day's expiry), so the broker queues what arrives while it is away,
  and restores the subscription after a restart of its own. Several bridges subscribe with an
  MQTT shared subscription (``$share/<group>/...``, ``shared=True``) and split the messages
  between them; Mosquitto 2.0.11 does not restore a shared subscription after it restarts,
  so messages devices send before the bridges subscribe again are delivered to no one
  (``twin-stream chaos``, RELIABILITY.md).
* QoS 1 with manual acks: a message is acknowledged to the broker only after Kafka acknowledged
  its record (``acks=all``, idempotent producer), and acks go out in the order the messages
  arrived (MQTT 3.1.1 §4.6). If the bridge dies before the ack, the broker delivers again.
* The producer is confluent-kafka's (librdkafka, in C: the per-record cost that bounded this
  path with kafka-python is gone). Kafka's confirmations arrive as delivery callbacks, which
  ``producer.poll()`` runs on the uplink's own thread; paho's network thread only hands each
  message over (``on_message`` never blocks).
* When Kafka is slow or down, records stay pending and nothing is acked: librdkafka holds them,
  in order, and sends them when Kafka is back (it never times a record out); the broker stops
  sending once its in-flight window for the bridge is full, so memory stays bounded and the
  broker holds (and persists) the backlog. librdkafka's queue full (``BufferError``) is
  backpressure: the record is produced again after a poll, never dropped. A record Kafka
  refused is sent again after a backoff; a fatal producer error stops the bridge (nothing
  unconfirmed was acked, so the broker delivers it again).
* Invalid input goes to ``twin.dlq`` with the original bytes and the reason (``routing.py``)
  and is acked, like any other message, once its dead letter is confirmed: bad input never
  stops the bridge.
* Connecting is paho's edge: a broker that cannot be reached or refuses the login when the
  bridge starts is an :class:`~twin_stream.errors.MqttError` from :meth:`Uplink.start`. Once
  running, a lost connection only delays messages: paho reconnects, the session resumes.
* ``mqtts://``: the endpoint carries the TLS context the bridge connects with
  (:func:`twin_stream.tls.mqtt_tls_context`). A broker whose certificate does not verify
  (another CA, expired, another name) is refused: an MqttError naming OpenSSL's reason.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import confluent_kafka
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from twin_stream.bridge.mqtt_client import MQTT_CONNECT_ERRORS, BridgeClient
from twin_stream.bridge.routing import Routed, dead_letter, route
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, KAFKA_TOPICS, mqtt_wildcard
from twin_stream.errors import (
    KafkaError,
    MqttError,
    map_exceptions,
)
from twin_stream.kafka import librdkafka_edge
from twin_stream.redaction import redactor

__all__ = [
    "BridgeStats",
    "MqttEndpoint",
    "Uplink",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and how the bridge logs in to the broker."""

    host: str
    port: int
    username: str
    password: str
    client_id: str
    tls: ssl.SSLContext | None = None  # for mqtts:// (twin_stream.tls.mqtt_tls_context)


@dataclass
class BridgeStats:
    received: int = 0
    forwarded: int = 0
    dead_lettered: int = 0
    acked: int = 0
    retries: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending:
    """One message from its arrival until its ack: its record and what Kafka said of it."""

    mid: int
    qos: int
    record: Routed
    topic: str = ""  # the MQTT topic it came on (for its dead letter, should Kafka refuse it)
    delivered: bool = False
    error: confluent_kafka.KafkaError | None = None
    attempts: int = 0
    next_try: float = 0.0


#: librdkafka's errors for a record Kafka will never take (too large, invalid): sent again, it
#: would hold every message behind it for ever (acks go in order), so it is dead-lettered.
_REFUSED_FOR_GOOD: Final = frozenset(
    {
        "MSG_SIZE_TOO_LARGE",
        "_MSG_SIZE_TOO_LARGE",
        "RECORD_LIST_TOO_LARGE",
        "INVALID_RECORD",
        "CORRUPT_MESSAGE",
    }
)


#: How long the uplink waits for Kafka's confirmations while messages are pending: new messages
#: that arrive meanwhile wait at most this long (the broker goes on sending up to its window).
_POLL_S: Final = 0.002


def _backoff(attempts: int) -> float:
    return min(5.0, 0.1 * (1 << min(attempts, 6)))


class Uplink:
    """MQTT (shared subscription, manual acks) -> Kafka (confluent-kafka, idempotent)."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        producer: confluent_kafka.Producer,
        *,
        share_group: str = "twin-bridge",
        shared: bool = False,
        max_unacked: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        topics: dict[str, str] = KAFKA_TOPICS,
    ) -> None:
        self.topics = topics
        self.endpoint = endpoint
        self.producer = producer
        self.share_group = share_group
        self.shared = shared
        self.max_unacked = max_unacked
        self.clock = clock
        self.stats = BridgeStats()
        # paho's thread puts, the uplink's takes (SimpleQueue: C, no Condition per put).
        self.inbox: queue.SimpleQueue[tuple[int, int, str, bytes]] = queue.SimpleQueue()
        self.pending: deque[_Pending] = deque()  # in receive order, until acked
        self.unsent: deque[_Pending] = deque()  # records to produce (again), in receive order
        self.failed: list[_Pending] = []  # records Kafka refused, from the delivery callbacks
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._answered = threading.Event()  # the broker answered our first CONNECT
        self._refusal: str | None = None  # ... with this refusal
        self.client = self._client()

    def _client(self) -> BridgeClient:
        e = self.endpoint
        client = BridgeClient(
            CallbackAPIVersion.VERSION2,
            client_id=e.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.username_pw_set(e.username, e.password)
        if e.tls is not None:
            client.tls_set_context(e.tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("bridge login refused: %s", reason)
            self._answer(f"login as {self.endpoint.username!r} refused: {reason}")
            return
        # Subscribe here so the subscriptions survive reconnects.
        share = f"$share/{self.share_group}/" if self.shared else ""
        client.subscribe([(f"{share}{mqtt_wildcard(c)}", 1) for c in DEVICE_TO_PLATFORM])
        self.connected.set()
        self._answer(None)
        log.info("bridge connected to %s:%d", self.endpoint.host, self.endpoint.port)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self._answer(f"connection closed before the login was answered ({reason})")
        log.warning("bridge disconnected: %s", reason)

    def _answer(self, refusal: str | None) -> None:
        """Record the first answer to our CONNECT (later ones are reconnects)."""
        if not self._answered.is_set():
            self._refusal = refusal
            self._answered.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Never block paho's network thread: hand the message over and return.
        self.inbox.put((message.mid, message.qos, message.topic, bytes(message.payload)))

    def start(self, timeout: float = 10.0) -> None:
        """Connect, log in and start paho's network thread.

        Raises :class:`MqttError` if the broker cannot be reached, refuses the login, or does
        not answer it within ``timeout`` seconds (nothing is left running then), and
        :class:`ConfigError` for a host or port paho cannot use."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 24 * 3600  # the broker keeps our session for a day
        # Receive Maximum: the broker sends at most this many unacked QoS 1 messages: the
        # bound on the bridge's memory when Kafka stalls.
        props.ReceiveMaximum = min(self.max_unacked, 65535)
        where = f"mqtt {self.endpoint.host}:{self.endpoint.port}"
        with map_exceptions(MQTT_CONNECT_ERRORS, where):
            self.client.connect(
                self.endpoint.host,
                self.endpoint.port,
                keepalive=30,
                clean_start=False,
                properties=props,
            )
        self.client.loop_start()
        answered = self._answered.wait(timeout)
        refusal = self._refusal if answered else f"no answer to the login within {timeout:g} s"
        if refusal is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client.release()
            raise MqttError(f"{where}: {refusal}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, give pending records a bounded time to land, disconnect."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self._advance(wait=0.01)
        self.client.disconnect()
        self.client.loop_stop()
        self.client.release()

    def run(self, stop: threading.Event | None = None) -> None:
        """Process until ``stop`` is set.

        Raises :class:`~twin_stream.errors.KafkaError` if the producer failed for good (a fatal
        librdkafka error): no message whose record was not confirmed has been acked."""
        stop = stop or self._stop
        while not stop.is_set():
            self.step(timeout=0.05)

    def step(self, timeout: float = 0.05) -> None:
        """Take new messages, produce their records, ack what Kafka confirmed (in order).

        Waits at most ``timeout`` for a first message when nothing is pending, and a short
        while for Kafka's confirmations when something is."""
        taken = self._take(block=timeout if not self.pending else 0.0)
        self._advance(wait=0.0 if taken else _POLL_S)

    def _take(self, block: float) -> int:
        """Route what paho handed over (each payload parsed once), up to the unacked limit."""
        taken = 0
        room = self.max_unacked - len(self.pending)
        inbox, pending, unsent, topics = self.inbox, self.pending, self.unsent, self.topics
        now = self.clock()
        while taken < room:
            try:
                if taken == 0 and block > 0:
                    mid, qos, topic, payload = inbox.get(timeout=block)
                    now = self.clock()
                else:
                    mid, qos, topic, payload = inbox.get_nowait()
            except queue.Empty:
                break
            record = route(topic, payload, now=now, topics=topics)
            if record.reason is not None:
                self.stats.dead_lettered += 1
                # the letter's reason is redacted; the topic is said as its letter says it
                log.info("dead letter from %s: %s", redactor().text(topic), record.reason)
            item = _Pending(mid, qos, record, topic)
            pending.append(item)
            unsent.append(item)
            taken += 1
        self.stats.received += taken
        return taken

    def _produce(self, now: float) -> None:
        """Hand the unsent records to librdkafka, in order, until its queue is full."""
        unsent, produce = self.unsent, self.producer.produce
        while unsent and now >= unsent[0].next_try:
            item = unsent[0]
            record = item.record
            try:
                produce(
                    record.kafka_topic,
                    record.value,
                    record.key,
                    on_delivery=self._delivery_callback(item),
                )
            except BufferError:  # librdkafka's queue is full: backpressure, never a drop
                self.producer.poll(_POLL_S)
                return
            except confluent_kafka.KafkaException as e:
                error = e.args[0] if e.args else None
                self._raise_if_fatal(error)
                if self._dead_letter_if_refused_for_good(item, error):
                    continue  # its dead letter goes instead, in its place
                item.attempts += 1
                item.next_try = now + _backoff(item.attempts)
                self.stats.retries += 1
                log.warning("kafka refused a record (%s); holding %d messages", e, len(unsent))
                return
            item.attempts += 1
            unsent.popleft()

    def _delivery_callback(self, item: _Pending) -> Callable[[Any, Any], None]:
        failed = self.failed

        def delivered(error: confluent_kafka.KafkaError | None, _message: Any) -> None:
            if error is None:
                item.delivered = True
            else:
                item.error = error
                failed.append(item)

        return delivered

    def _raise_if_fatal(self, error: object) -> None:
        if isinstance(error, confluent_kafka.KafkaError) and error.fatal():
            with librdkafka_edge("kafka: the bridge's producer failed"):
                raise confluent_kafka.KafkaException(error)

    def _dead_letter_if_refused_for_good(self, item: _Pending, error: object) -> bool:
        """Put the dead letter of a record Kafka will never take in its place (True), or
        leave it to be sent again (False). A dead letter refused for good stops the bridge:
        nowhere is left to put it, and its message stays unacknowledged, with the broker."""
        if not isinstance(error, confluent_kafka.KafkaError):
            return False
        if error.name() not in _REFUSED_FOR_GOOD:
            return False
        record = item.record
        if record.reason is not None:
            raise KafkaError(f"kafka refused a dead letter for good: {error.str()}")
        key = record.key.decode(errors="replace") if record.key else None
        reason = f"(kafka): the record was refused for good: {error.str()} [kafka_refused]"
        item.record = dead_letter(
            item.topic, record.value, reason, datetime.now(UTC), key, self.topics
        )
        self.stats.dead_lettered += 1
        log.error("a record from %s is dead-lettered: %s", redactor().text(item.topic), reason)
        return True

    def _retry_failed(self, now: float) -> None:
        """Records Kafka refused are produced again after a backoff, in receive order with the
        records not produced yet."""
        failed, self.failed = self.failed, []
        for item in failed:
            self._raise_if_fatal(item.error)
            if self._dead_letter_if_refused_for_good(item, item.error):
                item.error = None
                continue
            log.warning(
                "record for %s failed (%s); sending again", item.record.kafka_topic, item.error
            )
            item.error = None
            item.next_try = now + _backoff(item.attempts)
            self.stats.retries += 1
        again = {id(item) for item in failed} | {id(item) for item in self.unsent}
        self.unsent = deque(item for item in self.pending if id(item) in again)

    def _advance(self, wait: float = 0.0) -> None:
        now = time.monotonic()
        self._produce(now)
        self.producer.poll(wait if self.pending else 0.0)  # runs the delivery callbacks
        if self.failed:
            self._retry_failed(now)
        # Ack the head of the line while Kafka has confirmed it: acks stay in receive order.
        pending, ack, by_topic = self.pending, self.client.ack, self.stats.by_topic
        acked = forwarded = 0
        while pending and pending[0].delivered:
            head = pending.popleft()
            ack(head.mid, head.qos)
            acked += 1
            forwarded += head.record.reason is None
            topic = head.record.kafka_topic
            by_topic[topic] = by_topic.get(topic, 0) + 1
        self.stats.acked += acked
        self.stats.forwarded += forwarded
