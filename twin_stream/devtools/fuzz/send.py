"""The sending: each probe published by its device, followed by a valid reading of its own
(the simulator's), paced to a rate; a probe over the broker's packet limit on a connection of
its own."""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial

from simulators.device import SimulatedDevice
from twin_stream.bridge.routing import route
from twin_stream.devtools.fuzz.client import SUCCESS, Broker, DeviceClient, packet_size
from twin_stream.devtools.fuzz.probe import Probe
from twin_stream.devtools.fuzz.processes import wait
from twin_stream.devtools.fuzz.report import FuzzReport
from twin_stream.devtools.fuzz.verdicts import Sent
from twin_stream.domain.topics import mqtt_topic
from twin_stream.errors import MqttError

__all__ = ["send", "wait_for_the_bridge"]


def wait_for_the_bridge(client: DeviceClient, device: SimulatedDevice) -> None:
    """Until the bridge has subscribed: a status message that someone subscribes to is acked
    "Success" (before, "No matching subscribers"). It goes to the status topic like any other."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        birth = device.birth(datetime.now(UTC)).model_dump_json(exclude_none=True).encode()
        mid = client.publish(mqtt_topic(client.device_id, "status"), birth)
        if not wait(partial(operator.contains, client.acks, mid), 10.0):
            break
        if client.acks[mid] == SUCCESS:
            return
        time.sleep(0.5)
    raise MqttError("the bridge did not subscribe within 60 s (no subscriber for device topics)")


def _over_the_limit(broker: Broker, probe: Probe) -> Sent:
    """A probe over the broker's packet limit, sent on a connection of its own: the broker
    drops the connection that sends it, and the device's own connection must not be the one
    (paho would send it again on reconnecting, and be dropped again). Mosquitto says "Packet
    too large" (DISCONNECT 149); a client still writing a large packet when the broker closes
    the socket notices the reset first (paho: "Unspecified error", 128)."""
    client = DeviceClient(broker, probe.device_id)
    client.connect()
    try:
        client.publish(probe.topic, probe.payload)
        wait(lambda: client.dropped is not None, 10.0)
    finally:
        client.close()
    return Sent(None, -1, probe, dropped=client.dropped)


def send(
    broker: Broker,
    probes: Sequence[Probe],
    clients: Mapping[str, DeviceClient],
    simulated: Mapping[str, SimulatedDevice],
    rate: float,
    report: FuzzReport,
    progress: Callable[[float], None] | None,
) -> list[Sent]:
    """Each probe, then a valid reading of its device; paced to ``rate`` messages a second."""
    sent: list[Sent] = []
    limit = report.broker_max_packet_size
    interval = 1.0 / rate
    started = next_at = time.perf_counter()
    step = max(1, len(probes) // 100)
    for i, probe in enumerate(probes):
        client = clients[probe.device_id]
        if limit is not None and packet_size(probe.topic, probe.payload) > limit:
            sent.append(_over_the_limit(broker, probe))
        else:
            sent.append(Sent(client, client.publish(probe.topic, probe.payload), probe))
        report.categories[probe.category]["sent"] += 1
        device = simulated[probe.device_id]
        wall = datetime.now(UTC)
        topic = mqtt_topic(device.device_id, "telemetry")
        payload = device.telemetry_payload(float(device.seq), 1.0, wall)
        expected = route(topic, payload, now=wall)
        if expected.reason is not None:  # the simulator broke the contract: say so
            report.note("valid reading refused by the bridge's own rules", expected.reason)
        mid = client.publish(topic, payload)
        sent.append(Sent(client, mid, None, device.device_id, device.seq - 1, expected.value))
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
