"""``twin-stream bench worker`` and ``twin-stream bench e2e``.

worker: the Faust worker against a bare aiokafka consumer loop that runs the same domain code
(:class:`~twin_stream.worker.processing.DeviceState`) and produces the same scores, both
draining the same telemetry backlog from Kafka, one after the other in one run.

e2e: the whole pipeline as separate processes (bridge, worker, sink) on a local stack, fed by
the simulated fleet at a given rate; latency is publish (the reading's device timestamp) to its
anomaly score arriving on ``twin.scores``, split at the bridge (the telemetry record's
timestamp) into device -> bridge and bridge -> score, with each device's first reading apart.
The fleet starts once the pipeline moves readings: the worker answers ``GET /ready`` (partitions
assigned, tables recovered, streams running), then a device outside the fleet publishes until
one of its readings comes out scored on ``twin.scores`` and stored by the sink (neither the
bridge nor the sink has a readiness signal of its own; a bridge not yet subscribed would lose
the fleet's first readings). The collector reads from the ends of its topics, fetched before
the fleet starts.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from simulators.device import SimulatedDevice
from simulators.fast_forward import readings
from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.bench.readback import (
    ScoredReading,
    count_points,
    latency_split,
    output_span,
    reader_at_end,
    scores_in,
    wait_for_consumed,
)
from twin_stream.devtools.stack import Stack, free_port
from twin_stream.devtools.stack.harness import ManagedProcess, answers
from twin_stream.domain.batches import decode_scores, encode_scores
from twin_stream.domain.devices import fleet_device
from twin_stream.domain.topics import kafka_topics
from twin_stream.errors import ServiceNotReady
from twin_stream.kafka import ensure_topics

__all__ = ["bench_e2e", "bench_worker"]


def _load_backlog(bootstrap: str, topic: str, devices: int, per_device: int) -> int:
    plan = FleetPlan.generate(devices, hours=per_device / 3600.0, fault_fraction=0.3, seed=7)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    start = datetime.now(UTC) - timedelta(seconds=per_device)
    count = 0
    for reading in readings(plan, interval_s=1.0, start=start):
        producer.send(
            topic,
            key=reading.device_id.encode(),
            value=reading.model_dump_json(exclude_none=True).encode(),
        )
        count += 1
    producer.flush(120)
    producer.close()
    return count


async def _bare_loop(bootstrap: str, source: str, sink: str, total: int) -> float:
    """The peer: aiokafka consumer -> the same domain code -> aiokafka producer."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from twin_stream.domain.events import ScoreRecord
    from twin_stream.worker.processing import DeviceState

    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id="bench-peer", auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    states: dict[str, DeviceState] = {}
    done = 0
    started = time.perf_counter()
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            now = datetime.now(UTC)
            for records in batches.values():
                # The worker's output shape: one scores record per device and batch.
                scores: dict[bytes, list[ScoreRecord]] = {}
                for record in records:
                    device_id = record.key.decode()
                    state = states.setdefault(device_id, DeviceState.new(device_id))
                    out = state.on_telemetry(record.value, now=now)
                    scores.setdefault(record.key, []).extend(out.scores)
                    done += 1
                for key, batch in scores.items():
                    await producer.send(sink, key=key, value=encode_scores(batch))
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return time.perf_counter() - started


def bench_worker(*, devices: int = 50, per_device: int = 400) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        root = Path(tmp)
        stack = Stack(root / "stack", services=["kafka"])
        state = stack.up()
        try:
            bootstrap = state.url("kafka")
            ours_topics, peer_topics = kafka_topics("benchw"), kafka_topics("benchp")
            ensure_topics(bootstrap, 6, {}, ours_topics)
            ensure_topics(bootstrap, 6, {}, peer_topics)
            total = _load_backlog(bootstrap, ours_topics["telemetry"], devices, per_device)
            _load_backlog(bootstrap, peer_topics["telemetry"], devices, per_device)
            port = free_port()
            started = time.perf_counter()
            with ManagedProcess.twin_stream(
                "worker",
                [
                    "worker",
                    "--web-port",
                    str(port),
                    "--data-dir",
                    str(root / "w"),
                    "--topic-prefix",
                    "benchw",
                ],
                root / "worker.log",
                env={"TWIN_KAFKA__BOOTSTRAP": bootstrap},
            ):
                # No reader competes with either side while it runs: the worker is watched
                # by its output topic's end offsets only, the peer knows when it is done.
                wait_for_consumed(bootstrap, "benchw-worker", ours_topics["telemetry"], total, 600)
                ours_wall = time.perf_counter() - started
            asyncio.run(
                _bare_loop(bootstrap, peer_topics["telemetry"], peer_topics["scores"], total)
            )
            processed, ours_span = output_span(
                bootstrap, ours_topics["scores"], total, 120, scores_in
            )
            peer_done, peer_span = output_span(
                bootstrap, peer_topics["scores"], total, 120, scores_in
            )
        finally:
            stack.down()
    # Both paces are measured the same way: scores out, first to last (broker timestamps).
    ours, peer = processed / ours_span, peer_done / peer_span
    return {
        "events_per_s": round(ours, 1),
        "peer_events_per_s": round(peer, 1),
        "ratio": round(ours / peer, 3),
        "events": total,
        "processed": processed,
        "worker_wall_s": round(ours_wall, 1),
        "note": "steady state: first to last score (broker timestamps), read after each run; "
        "neither side has a concurrent reader; worker_wall_s adds Faust start-up",
        "peer": "aiokafka consumer loop (getmany, 500 records) + the same DeviceState code + "
        "aiokafka producer, one scores record per device per batch as the worker sends",
        "machine": machine_info(),
    }


#: The rates ``bench e2e --find-max`` tries, in order, until one misses its p99 or loses data.
SEARCH_RATES = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000)


def bench_e2e(
    *,
    rates: tuple[int, ...] = (1000, 5000),
    duration_s: float = 30.0,
    devices: int = 50,
    find_max_p99_ms: float | None = None,
) -> dict[str, Any]:
    """Latency publish -> score at each of ``rates``. With ``find_max_p99_ms``, the rates of
    :data:`SEARCH_RATES` in turn, until one's p99 is over that limit or a reading is lost; the
    result then names the highest rate that kept both (``max_rate``)."""
    if find_max_p99_ms is not None:
        rates = SEARCH_RATES
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        root = Path(tmp)
        plan_ids = FleetPlan.generate(devices, hours=1, fault_fraction=0, seed=1).devices
        probe = fleet_device(devices + 1)  # outside the fleet: its readings are not measured
        stack = Stack(
            root / "stack",
            services=["mosquitto", "kafka", "influxdb"],
            device_ids=[*(d.device_id for d in plan_ids), probe[0]],
        )
        state = stack.up()
        env = {"TWIN_STACK__DIR": str(root / "stack")}
        try:
            bootstrap = state.url("kafka")
            topics = kafka_topics("twin")
            ensure_topics(bootstrap, 6, {}, topics)
            passwords = {a.username: a.password for a in stack.accounts}
            port, influx_url = state.services["mosquitto"].port, state.url("influxdb")
            web_port = free_port()
            web = f"http://127.0.0.1:{web_port}"
            with (
                ManagedProcess.twin_stream(
                    "bridge", ["bridge"], root / "bridge.log", env=env
                ) as bridge,
                ManagedProcess.twin_stream(
                    "worker",
                    ["worker", "--web-port", str(web_port), "--data-dir", str(root / "w")],
                    root / "worker.log",
                    env=env,
                    ready=answers(f"{web}/ready"),
                ) as worker,
                ManagedProcess.twin_stream("sink", ["sink"], root / "sink.log", env=env) as sink,
            ):
                processes = (bridge, worker, sink)
                worker.wait_ready(300, interval=1.0)
                _wait_until_flowing(
                    bootstrap, influx_url, topics, port, probe, passwords[probe[0]], processes
                )
                for rate in rates:
                    run = _measure(
                        bootstrap, influx_url, topics, port, passwords, rate, duration_s, devices
                    )
                    for process in processes:  # one that died meanwhile: its log, not a figure
                        process.check()
                    results.append(run)
                    if find_max_p99_ms is not None and not _kept(run, find_max_p99_ms):
                        break
        finally:
            stack.down()
    figures: dict[str, Any] = {"runs": results, "machine": machine_info()}
    if find_max_p99_ms is not None:
        kept = [r["rate"] for r in results if _kept(r, find_max_p99_ms)]
        figures["max_rate"] = max(kept, default=None)
        figures["p99_limit_ms"] = find_max_p99_ms
    return figures


def _wait_until_flowing(
    bootstrap: str,
    influx_url: str,
    topics: dict[str, str],
    port: int,
    probe: tuple[str, str],
    password: str,
    processes: tuple[ManagedProcess, ...],
    timeout: float = 300.0,
) -> None:
    """Until a reading of device ``probe`` (id, type), published over MQTT, comes out scored on
    ``twin.scores`` and stored by the sink: the bridge subscribed, the worker scoring, the sink
    in its group. It publishes again each time 5 s pass with no score (a reading sent before
    the bridge subscribed reaches no one). Raises, with the end of its log, if one of
    ``processes`` exits, or with all of theirs if it is not so in ``timeout`` seconds."""
    device_id, device_type = probe
    plan = FleetPlan([SimulatedDevice.create(device_id, device_type, seed=1)], hours=1.0, seed=1)
    since = time.time()
    deadline = time.monotonic() + timeout
    scored = stored = False
    reader = reader_at_end(bootstrap, topics["scores"])
    try:
        while not stored:
            for process in processes:
                process.check()
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}\n{p.tail(10)}" for p in processes)
                raise ServiceNotReady(
                    "pipeline",
                    f"no reading of {device_id} came through in {timeout:g} s "
                    f"(scored: {scored}, stored: {stored})",
                    tails,
                )
            if not scored:
                MqttFleet(
                    plan, host="127.0.0.1", port=port, passwords={device_id: password}, rate_hz=2.0
                ).run(1.0)
                scored = any(
                    score["device_id"] == device_id
                    for records in reader.poll(timeout_ms=5000).values()
                    for record in records
                    for score in decode_scores(record.value)
                )
            else:
                stored = count_points(influx_url, since) > 0
                if not stored:
                    time.sleep(0.5)  # the sink writes its batches every second
    finally:
        reader.close()


def _kept(run: dict[str, Any], p99_limit_ms: float) -> bool:
    """Whether a run stored and scored every reading it published with p99 under the limit."""
    published = run["published"]
    return (
        run["p99_ms"] is not None
        and run["p99_ms"] <= p99_limit_ms
        and run["scored"] >= published
        and run["stored"] >= published
    )


def _measure(
    bootstrap: str,
    influx_url: str,
    topics: dict[str, str],
    port: int,
    passwords: dict[str, str],
    rate: int,
    duration_s: float,
    devices: int,
) -> dict[str, Any]:
    plan = FleetPlan.generate(devices, hours=1, fault_fraction=0.0, seed=rate)
    fleet = MqttFleet(
        plan, host="127.0.0.1", port=port, passwords=passwords, rate_hz=rate / devices
    )
    scored: list[ScoredReading] = []
    bridged: dict[tuple[str, int], float] = {}  # (device, seq): when the bridge received it
    stop = threading.Event()
    since = time.time()

    failed: list[BaseException] = []
    # Positioned at the ends now: it sees every record from here on, with no wait.
    consumer = reader_at_end(bootstrap, topics["scores"], topics["telemetry"])

    def collect() -> None:
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    arrived = time.time()
                    for record in records:
                        if record.topic == topics["telemetry"]:
                            # The bridge stamps each record with when it received the reading.
                            reading = orjson.loads(record.value)
                            bridged[reading["device_id"], reading["seq"]] = record.timestamp / 1000
                            continue
                        for score in decode_scores(record.value):
                            ts = datetime.fromisoformat(score["ts"]).timestamp()
                            if ts >= since:
                                scored.append(
                                    ScoredReading(
                                        score["device_id"], score["seq_last"], ts, arrived
                                    )
                                )
        except BaseException as e:  # raised again by _measure, once the thread ended
            failed.append(e)
        finally:
            consumer.close()

    collector = threading.Thread(target=collect)
    collector.start()
    stats = fleet.run(duration_s)
    deadline = time.monotonic() + 120
    while len(scored) < stats.published and time.monotonic() < deadline and not failed:
        time.sleep(0.5)
    stop.set()
    collector.join()
    if failed:
        raise failed[0]
    # The sink may still be flushing its last batches: wait for the points, bounded.
    deadline = time.monotonic() + 90
    stored = count_points(influx_url, since)
    while stored < stats.published and time.monotonic() < deadline:
        time.sleep(2.0)
        stored = count_points(influx_url, since)
    return {
        "rate": rate,
        "published": stats.published,
        "scored": len(scored),
        "stored": stored,
        "achieved_publish_rate": round(stats.published / duration_s, 1),
        **latency_split(scored, bridged),
    }
