"""The run: the probes sent through the real bridge at load and what became of each counted
(:func:`run_fuzz`, against any Mosquitto and Kafka with a bridge running between them), and the
whole thing on a local stack of its own (:func:`fuzz_stack`: Mosquitto and Kafka, the bridge
and a worker as processes), which is ``twin-stream fuzz``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulators.device import SimulatedDevice
from twin_stream.devtools.fuzz.client import Broker, DeviceClient
from twin_stream.devtools.fuzz.draw import probes as make_probes
from twin_stream.devtools.fuzz.probe import Device, Probe, fleet
from twin_stream.devtools.fuzz.processes import Watched, wait, watched
from twin_stream.devtools.fuzz.report import FuzzReport, figures
from twin_stream.devtools.fuzz.send import send, wait_for_the_bridge
from twin_stream.devtools.fuzz.verdicts import count as count_verdicts
from twin_stream.devtools.stack import Stack, free_port
from twin_stream.devtools.stack.harness import answers
from twin_stream.domain.topics import kafka_topics
from twin_stream.kafka import ensure_topics

__all__ = ["fuzz_stack", "run_fuzz"]


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
    and count what became of each (:mod:`~twin_stream.devtools.fuzz.verdicts`). Each device
    publishes on its own MQTT connection (v5, QoS 1). ``services`` are watched: one that dies
    ends the waiting."""
    report = FuzzReport()
    report.largest_payload = max((len(p.payload) for p in probes), default=0)
    with ExitStack() as closing:
        clients: dict[str, DeviceClient] = {}
        for device in devices:
            client = DeviceClient(broker, device.device_id)
            client.connect()
            closing.callback(client.close)
            clients[device.device_id] = client
        report.broker_max_packet_size = next(iter(clients.values())).max_packet_size
        simulated = {
            d.device_id: SimulatedDevice.create(d.device_id, d.device_type, seed=seed)
            for d in devices
        }
        wait_for_the_bridge(clients[devices[0].device_id], simulated[devices[0].device_id])
        sent = send(broker, probes, clients, simulated, rate, report, progress)
        wait(lambda: all(c.settled() for c in clients.values()), 120.0, services)
        count_verdicts(sent, bootstrap, topics, report, services, drain_timeout_s)
    return report


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
                    # Ready: partitions assigned, streams running.
                    ready = answers(f"http://127.0.0.1:{port}/ready")
                    worker_log = logs / "worker.log"
                    services.append(
                        running.enter_context(watched("worker", args, env, worker_log, ready=ready))
                    )
                    say("waiting for the worker to be ready (GET /ready)")
                    services[-1].process.wait_ready(180.0, interval=0.5)
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
            result = figures(report, services, count, devices, rate, seed, drawn_s)
        finally:
            stack.down()
    return result
