"""Uplink: device messages from MQTT into Kafka, at least once, in order, with backpressure.

* The bridge subscribes with an MQTT shared subscription (``$share/<group>/...``), so several
  bridges split the devices' messages between them.
* QoS 1 with manual acks: a message is acknowledged to the broker only after Kafka acknowledged
  its record (``acks=all``, idempotent producer), and acks go out in the order the messages
  arrived (MQTT 3.1.1 §4.6). If the bridge dies before the ack, the broker delivers again.
* When Kafka is slow or down, records stay pending and nothing is acked; the broker stops
  sending once its in-flight window for the bridge is full, so memory stays bounded and the
  broker holds (and persists) the backlog. A failed record is sent again, never dropped.
* Invalid input goes to ``twin.dlq`` with the original bytes and the reason (``routing.py``)
  and is acked like any other message: bad input never stops the bridge.
* Connecting is paho's edge: a broker that cannot be reached or refuses the login when the
  bridge starts is an :class:`~twin_stream.errors.MqttError` from :meth:`Uplink.start`. Once
  running, a lost connection only delays messages: paho reconnects, the session resumes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
from kafka import KafkaProducer
from kafka.errors import KafkaError
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from twin_stream.bridge.routing import Routed, route
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, KAFKA_TOPICS, mqtt_wildcard
from twin_stream.errors import ConfigError, MqttError, TwinStreamError, map_exceptions

__all__ = ["MQTT_CONNECT_ERRORS", "BridgeStats", "MqttEndpoint", "Uplink"]

#: What paho's connect raises: a host or port it cannot use (ValueError), and no broker there
#: (refused, unreachable, DNS, timeout, TLS: all OSErrors, ssl.SSLError included).
MQTT_CONNECT_ERRORS: Final[Mapping[type[BaseException], type[TwinStreamError]]] = {
    ValueError: ConfigError,
    OSError: MqttError,
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and how the bridge logs in to the broker."""

    host: str
    port: int
    username: str
    password: str
    client_id: str
    tls: Any = None  # an ssl.SSLContext for mqtts://


@dataclass
class BridgeStats:
    received: int = 0
    forwarded: int = 0
    dead_lettered: int = 0
    acked: int = 0
    retries: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


@dataclass
class _Pending:
    mid: int
    qos: int
    record: Routed
    future: Any = None
    attempts: int = 0
    next_try: float = 0.0


class Uplink:
    """MQTT (shared subscription, manual acks) -> Kafka (idempotent producer)."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        producer: KafkaProducer,
        *,
        share_group: str = "twin-bridge",
        max_unacked: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        topics: dict[str, str] = KAFKA_TOPICS,
    ) -> None:
        self.topics = topics
        self.endpoint = endpoint
        self.producer = producer
        self.share_group = share_group
        self.max_unacked = max_unacked
        self.clock = clock
        self.stats = BridgeStats()
        self.inbox: queue.Queue[tuple[int, int, str, bytes]] = queue.Queue()
        self.pending: deque[_Pending] = deque()  # in receive order, until acked
        self.unsent: deque[_Pending] = deque()  # pending items whose record must be (re)sent
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._answered = threading.Event()  # the broker answered our first CONNECT
        self._refusal: str | None = None  # ... with this refusal
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        e = self.endpoint
        client = mqtt.Client(
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
        client.subscribe(
            [(f"$share/{self.share_group}/{mqtt_wildcard(c)}", 1) for c in DEVICE_TO_PLATFORM]
        )
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
            raise MqttError(f"{where}: {refusal}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, give pending records a bounded time to land, disconnect."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self._advance()
            time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()

    def run(self, stop: threading.Event | None = None) -> None:
        """Process until ``stop`` is set."""
        stop = stop or self._stop
        while not stop.is_set():
            self.step(timeout=0.05)

    def step(self, timeout: float = 0.05) -> None:
        """Take new messages, send their records, ack what Kafka confirmed (in order)."""
        deadline = time.monotonic() + timeout
        while len(self.pending) < self.max_unacked:
            try:
                mid, qos, topic, payload = self.inbox.get(
                    timeout=max(0.0, deadline - time.monotonic())
                )
            except queue.Empty:
                break
            record = route(topic, payload, now=self.clock(), topics=self.topics)
            self.stats.received += 1
            if record.reason is not None:
                self.stats.dead_lettered += 1
                log.info("dead letter from %s: %s", topic, record.reason)
            item = _Pending(mid, qos, record)
            self.pending.append(item)
            self.unsent.append(item)
        self._advance()

    def _send(self, item: _Pending) -> None:
        item.attempts += 1
        try:
            item.future = self.producer.send(
                item.record.kafka_topic, key=item.record.key, value=item.record.value
            )
        except KafkaError as e:  # buffer full or metadata unavailable: Kafka is down or slow
            item.future = None
            item.next_try = time.monotonic() + min(5.0, 0.1 * 2 ** min(item.attempts, 6))
            self.stats.retries += 1
            log.warning("kafka unavailable (%s); holding %d messages", e, len(self.pending))

    def _advance(self) -> None:
        now = time.monotonic()
        while self.unsent and now >= self.unsent[0].next_try:
            item = self.unsent.popleft()
            self._send(item)
            if item.future is None:  # Kafka refused it for now: try again after the backoff
                self.unsent.appendleft(item)
                break
        # Ack the head of the line while Kafka has confirmed it: acks stay in receive order.
        while self.pending:
            head = self.pending[0]
            if head.future is None or not head.future.is_done:
                break
            if head.future.failed():
                log.warning(
                    "record for %s failed (%s); sending again",
                    head.record.kafka_topic,
                    head.future.exception,
                )
                self.stats.retries += 1
                head.future = None
                head.next_try = now + min(5.0, 0.1 * 2 ** min(head.attempts, 6))
                self.unsent.appendleft(head)
                break
            self.pending.popleft()
            self.client.ack(head.mid, head.qos)
            self.stats.acked += 1
            self.stats.forwarded += head.record.reason is None
            topic = head.record.kafka_topic
            self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
