"""The simulated fleet, live over MQTT with paho-mqtt: one client per device, one thread for all.

Each device logs in with its own client id and credentials, publishes a retained birth message
and sets a retained last will (``offline``) on its status topic, subscribes to its desired-state
topic, reports its settings, then publishes telemetry at QoS 1. Desired state is applied,
acknowledged on the ack topic and reported back. An ``offline`` fault drops the connection
without a DISCONNECT, so the broker publishes the last will, as it would for a real outage.

All clients share one thread and one ``select`` loop (paho's external-loop API), so a single
process can drive hundreds of devices without a thread each.

Over ``mqtts://`` every device verifies the broker with the TLS context it is given (one for the
whole fleet, or one per device, with that device's client certificate); a broker that cannot be
reached or does not verify when the fleet starts is an :class:`~twin_stream.errors.MqttError`.
"""

from __future__ import annotations

import heapq
import logging
import selectors
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simulators.device import SimulatedDevice
from simulators.fleet import FleetPlan
from twin_stream.domain.messages import DesiredMessage, parse_payload
from twin_stream.domain.topics import mqtt_topic
from twin_stream.errors import MqttError, PayloadRejected, map_exceptions

__all__ = ["FleetStats", "MqttFleet"]

log = logging.getLogger(__name__)

#: Readings a device buffers while its broker does not acknowledge; beyond that it drops the
#: oldest (a real device's buffer is finite too) and counts them.
DEVICE_QUEUE = 10_000


@dataclass
class FleetStats:
    """What the fleet did during a run."""

    published: int = 0
    acked: int = 0
    dropped: int = 0
    desired_received: int = 0
    acks_sent: int = 0
    reconnects: int = 0
    published_seqs: dict[str, list[int]] = field(default_factory=dict)  # if record_seqs
    command_results: Counter[str] = field(default_factory=Counter)


class _Connection:
    """One device's MQTT client and its part of the protocol."""

    def __init__(self, fleet: MqttFleet, device: SimulatedDevice, password: str) -> None:
        self.fleet = fleet
        self.device = device
        self.connected = False
        self.online_wanted = True
        self.pending: set[int] = set()  # message ids of readings not yet acknowledged
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device.device_id, clean_session=False
        )
        client.username_pw_set(device.device_id, password)
        tls = fleet.tls(device.device_id) if callable(fleet.tls) else fleet.tls
        if tls is not None:
            client.tls_set_context(tls)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(DEVICE_QUEUE)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self.client = client
        self.set_will()

    def set_will(self) -> None:
        will = self.device.will(self.fleet.wall()).model_dump_json().encode()
        self.client.will_set(mqtt_topic(self.device.device_id, "status"), will, qos=1, retain=True)

    def topic(self, channel: Any) -> str:
        return mqtt_topic(self.device.device_id, channel)

    def connect(self) -> None:
        self.client.connect(self.fleet.host, self.fleet.port, keepalive=30)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("device %s refused by broker: %s", self.device.device_id, reason)
            return
        self.connected = True
        self.fleet.sockets_changed = True
        wall = self.fleet.wall()
        client.publish(self.topic("status"), self.device.birth(wall).model_dump_json(), 1, True)
        client.subscribe(self.topic("desired"), qos=1)
        client.publish(self.topic("reported"), self.device.reported(wall).model_dump_json(), 1)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected = False
        self.fleet.sockets_changed = True

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        if mid in self.pending:
            self.pending.discard(mid)
            self.fleet.stats.acked += 1

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.fleet.stats.desired_received += 1
        wall = self.fleet.wall()
        try:
            desired = parse_payload(DesiredMessage, bytes(message.payload))
        except PayloadRejected as e:
            log.warning("device %s ignores bad desired state: %s", self.device.device_id, e)
            return
        acks = self.device.receive(desired, t_s=self.fleet.sim_seconds(), wall=wall)
        for ack in acks:  # ``delivered`` (a new one), then what became of it
            client.publish(self.topic("ack"), ack.model_dump_json(exclude_none=True), qos=1)
            self.fleet.stats.acks_sent += 1
        ack = acks[-1]
        self.fleet.stats.command_results[ack.status] += 1
        if ack.status == "applied":  # a new sample interval applies from the next reading
            report = self.device.reported(wall, command_id=desired.command_id)
            client.publish(self.topic("reported"), report.model_dump_json(), qos=1)

    def publish_reading(self, t_s: float, dt: float, wall: datetime) -> None:
        """Publish the reading sampled at simulated time ``t_s``, stamped ``wall``."""
        payload = self.device.telemetry_payload(t_s, dt, wall)
        seq = self.device.seq - 1
        info = self.client.publish(self.topic("telemetry"), payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.fleet.stats.dropped += 1
            return
        self.pending.add(info.mid)
        self.fleet.stats.published += 1
        if self.fleet.record_seqs:
            self.fleet.stats.published_seqs.setdefault(self.device.device_id, []).append(seq)

    def drop_connection(self) -> None:
        """Lose the network: close the socket without DISCONNECT, so the will is published."""
        sock = self.client.socket()
        if sock is not None:
            sock.close()  # paho notices on its next read and reports a disconnect
        self.connected = False
        self.fleet.sockets_changed = True


class MqttFleet:
    """Run a fleet plan against an MQTT broker.

    ``rate_hz`` is how often each device publishes (wall clock); ``speed`` is how much faster
    than the wall clock the simulated physics run, so degradations that take hours show in
    minutes. Telemetry timestamps stay on the wall clock (the platform rejects far-future ones).

    Each device samples on its own schedule, as a real one does on its own clock: its readings
    are planned one interval apart from its first, and a reading's physics time and timestamp
    are those of its planned sample, not of the moment the fleet's thread got round to it. A
    fleet held up (a busy machine, a pause of the process) publishes the readings it owes at
    once, one per device per turn of its loop, so the data and the count of readings do not
    depend on how the fleet was scheduled: a 1 s stall at ``speed=120`` is not a 2-minute jump
    of the physics.
    ``tls`` is the TLS context of every device, or a function that gives each device its own
    (from its device id), for ``mqtts://``.
    """

    def __init__(
        self,
        plan: FleetPlan,
        *,
        host: str,
        port: int,
        passwords: dict[str, str],
        rate_hz: float = 1.0,
        speed: float = 1.0,
        tls: ssl.SSLContext | Callable[[str], ssl.SSLContext] | None = None,
        clock: Callable[[], float] = time.monotonic,
        record_seqs: bool = False,
    ) -> None:
        self.plan = plan
        self.host, self.port, self.tls = host, port, tls
        self.rate_hz, self.speed = rate_hz, speed
        self.clock = clock
        self.record_seqs = record_seqs  # keep every published seq (tests; memory grows)
        self.stats = FleetStats()
        self._started = clock()
        self._started_wall = datetime.now(UTC)
        self._stop = threading.Event()
        self._due: list[tuple[float, int]] = []
        missing = [d.device_id for d in plan.devices if d.device_id not in passwords]
        if missing:
            raise ValueError(f"no MQTT password for {len(missing)} devices, e.g. {missing[0]}")
        for device in plan.devices:
            device.settings = device.settings.model_copy(
                update={"sample_interval_s": speed / rate_hz}
            )
        self.connections = [_Connection(self, d, passwords[d.device_id]) for d in plan.devices]
        self._last_t: dict[int, float] = {}
        #: Set when a socket opens or closes: the selector's registrations must be refreshed.
        self.sockets_changed = True

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def sim_seconds(self) -> float:
        return (self.clock() - self._started) * self.speed

    def _planned_wall(self, due: float) -> datetime:
        """The wall-clock time of a reading planned for ``due`` (on ``clock``)."""
        return self._started_wall + timedelta(seconds=due - self._started)

    def _interval_wall(self, conn: _Connection) -> float:
        return conn.device.settings.sample_interval_s / self.speed

    def run(self, duration_s: float, progress: Callable[[float], None] | None = None) -> FleetStats:
        """Publish for ``duration_s`` wall seconds, then disconnect every device cleanly."""
        selector = selectors.DefaultSelector()
        self._started, self._started_wall = self.clock(), datetime.now(UTC)
        where = f"mqtt {self.host}:{self.port}"
        for i, conn in enumerate(self.connections):
            try:
                with map_exceptions({OSError: MqttError}, f"{where}: {conn.device.device_id}"):
                    conn.connect()  # TCP, and the TLS handshake that verifies the broker
            except MqttError:
                self._close_sockets(selector)
                raise
            # Spread the first readings over one interval, so devices do not publish in bursts.
            offset = self._interval_wall(conn) * i / max(1, len(self.connections))
            heapq.heappush(self._due, (self._started + offset, i))
        registered: dict[int, _Connection] = {}
        end = self._started + duration_s
        last_misc = 0.0
        try:
            while True:
                now = self.clock()
                if now >= end or self._stop.is_set():
                    break
                if self.sockets_changed:
                    self._sync_registrations(selector, registered)
                # Every device whose reading is due publishes one now; one that owes more
                # (the fleet was held up) publishes the next at the next turn, after the
                # sockets were served.
                owed: list[tuple[float, int]] = []
                while self._due and self._due[0][0] <= now:
                    owed.append(heapq.heappop(self._due))
                touched: list[_Connection] = []
                for planned, i in owed:
                    self._tick(self.connections[i], i, planned)
                    touched.append(self.connections[i])
                timeout = max(0.0, min((self._due[0][0] if self._due else end), end) - now)
                for key, events in selector.select(timeout=min(timeout, 0.05)):
                    conn = key.data
                    if events & selectors.EVENT_READ:
                        conn.client.loop_read()
                    if events & selectors.EVENT_WRITE:
                        conn.client.loop_write()
                for conn in touched:  # paho writes inline; this flushes what did not fit
                    if conn.client.want_write():
                        conn.client.loop_write()
                if now - last_misc >= 1.0:
                    last_misc = now
                    self._misc()
                    if progress is not None:
                        progress(min(1.0, (now - self._started) / duration_s))
            self._drain(selector, registered)
        finally:
            for conn in self.connections:
                if conn.connected:
                    conn.client.publish(
                        conn.topic("status"),
                        conn.device.will(self.wall())
                        .model_copy(update={"reason": "shutdown"})
                        .model_dump_json(),
                        qos=1,
                        retain=True,
                    )
                    conn.client.loop_write()
                    conn.client.disconnect()
                    conn.client.loop_write()
            selector.close()
        if progress is not None:
            progress(1.0)
        return self.stats

    def _close_sockets(self, selector: selectors.BaseSelector) -> None:
        """Close what the devices that connected so far opened, when the fleet cannot start."""
        for conn in self.connections:
            sock = conn.client.socket()
            if sock is not None:
                sock.close()
        selector.close()

    def stop(self) -> None:
        """End :meth:`run` early (from another thread); devices still disconnect cleanly."""
        self._stop.set()

    def _tick(self, conn: _Connection, i: int, due: float) -> None:
        """The device's reading planned for ``due`` (on ``clock``), and the plan of its next."""
        t_s = (due - self._started) * self.speed
        dt = t_s - self._last_t.get(i, t_s - conn.device.settings.sample_interval_s)
        self._last_t[i] = t_s
        heapq.heappush(self._due, (due + self._interval_wall(conn), i))
        if conn.device.offline(t_s):
            conn.device.model.sample(t_s, dt)  # the physics go on while the network is down
            if conn.connected:
                conn.online_wanted = False
                conn.drop_connection()
            return
        if not conn.online_wanted:
            conn.online_wanted = True
            self._reconnect(conn)
        if conn.connected:
            conn.publish_reading(t_s, dt, self._planned_wall(due))
        else:
            conn.device.sample(t_s, dt)  # not connected: this reading is lost, seq moves on
            conn.device.seq += 1

    def _reconnect(self, conn: _Connection) -> None:
        try:
            conn.set_will()
            conn.client.reconnect()
            self.stats.reconnects += 1
        except OSError as e:
            log.warning("device %s cannot reconnect yet: %s", conn.device.device_id, e)

    def _misc(self) -> None:
        self.sockets_changed = True  # also catches sockets paho replaced on its own
        for conn in self.connections:
            if conn.client.want_write():
                conn.client.loop_write()
            conn.client.loop_misc()
            if conn.online_wanted and not conn.connected and conn.client.socket() is None:
                self._reconnect(conn)

    def _sync_registrations(
        self, selector: selectors.BaseSelector, registered: dict[int, _Connection]
    ) -> None:
        self.sockets_changed = False
        live = {}
        for conn in self.connections:
            sock = conn.client.socket()
            if sock is not None and sock.fileno() >= 0:
                live[sock.fileno()] = (sock, conn)
        for fd in list(registered):
            if fd not in live or registered[fd] is not live[fd][1]:
                selector.unregister(fd)
                del registered[fd]
        for fd, (sock, conn) in live.items():
            if fd not in registered:
                selector.register(sock, selectors.EVENT_READ, conn)
                registered[fd] = conn

    def _drain(
        self,
        selector: selectors.BaseSelector,
        registered: dict[int, _Connection],
        timeout_s: float = 10.0,
    ) -> None:
        """Wait (bounded) for the broker to acknowledge what was published."""
        deadline = self.clock() + timeout_s
        while self.stats.acked < self.stats.published and self.clock() < deadline:
            self._sync_registrations(selector, registered)
            for key, _ in selector.select(timeout=0.05):
                key.data.client.loop_read()
            for conn in self.connections:
                if conn.client.want_write():
                    conn.client.loop_write()
                conn.client.loop_misc()
