"""``twin-stream demo``: the whole platform on one machine, catching a failing device.

The local stack (Mosquitto, Kafka, InfluxDB) and the bridge, a worker and the sink, all
real processes on loopback, fed by a simulated fleet whose clock runs ``speed`` times faster
than the wall clock, so that degradations that take hours show in minutes. One infusion pump
always wears out during the run (the showcase); ``fault_fraction`` of the others get a fault
drawn by the simulator. At the end: precision and recall of the alerts against the simulator's
ground truth, and an HTML report.

The twin API is guarded as in production: the demo makes an admin token of its own, in its work
dir's tokens file, and prints how to use it.
"""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from simulators.faults import Fault
from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from twin_stream.auth import TokenFile, TokenStore
from twin_stream.devtools.bench.readback import count_points, percentile
from twin_stream.devtools.demo.live_view import render
from twin_stream.devtools.demo.observer import Observer
from twin_stream.devtools.demo.report import write_report
from twin_stream.devtools.stack import Stack, free_port
from twin_stream.devtools.stack.harness import ManagedProcess, all_of, answers
from twin_stream.domain.topics import kafka_topics
from twin_stream.kafka import ensure_topics

__all__ = ["DemoOptions", "demo_plan", "run_demo", "score_devices"]

SHOWCASE = "pump-0001"
#: The alert kinds that detect a fault: a device fault (anomaly, predicted failure) or a sensor
#: fault (data quality: the simulator's stuck sensors and dropouts).
DETECTION_KINDS = ("anomaly", "predicted_failure", "data_quality")


@dataclass(frozen=True)
class DemoOptions:
    devices: int = 20
    fault_fraction: float = 0.2
    duration_s: float = 180.0
    speed: float = 120.0
    rate_hz: float = 5.0  # readings per second per device (wall clock)
    report: Path = Path("demo-report.html")
    seed: int = 7
    workdir: Path = Path(".twin-stream/demo")

    @property
    def simulated_hours(self) -> float:
        return self.duration_s * self.speed / 3600.0


def demo_plan(options: DemoOptions) -> FleetPlan:
    """The fleet: the simulator's faults, plus the showcase pump whose motor wears out from a
    tenth of the run and fails a little after its end (so it can be caught before it fails)."""
    hours = options.simulated_hours
    plan = FleetPlan.generate(
        options.devices,
        hours=hours,
        fault_fraction=options.fault_fraction,
        seed=options.seed,
        start_hour=12.0,
    )
    pump = next(d for d in plan.devices if d.device_id == SHOWCASE)
    pump.model.rate = 100.0
    pump.faults = [
        Fault(
            "motor_wear",
            "degradation",
            "motor_current",
            onset_s=0.1 * hours * 3600,
            duration_s=1.0 * hours * 3600,
            exponent=1.2,
        )
    ]
    return plan


def ground_truth(plan: FleetPlan, start: datetime, speed: float) -> list[dict[str, Any]]:
    """Every fault with its onset and failure on the wall clock of the run."""

    def wall(seconds: float | None) -> str | None:
        return None if seconds is None else (start + timedelta(seconds=seconds / speed)).isoformat()

    return [
        {
            "device_id": d.device_id,
            "device_type": d.device_type,
            "fault": f.kind,
            "category": f.category,
            "metric": f.metric,
            "onset": wall(f.onset_s),
            "failure": wall(f.failure_s),
        }
        for d in plan.devices
        for f in d.faults
    ]


def score_devices(
    truth: list[dict[str, Any]], alerts: list[dict[str, Any]], run_end: datetime
) -> dict[str, Any]:
    """Device-level precision and recall: a device is faulty when a fault began during the
    run, alerted when it got a detection alert (anomaly, predicted failure or data quality;
    warning or critical).

    >>> truth = [{"device_id": "pump-0001", "onset": "2026-01-01T00:00:00+00:00"}]
    >>> alerts = [{"device_id": "pump-0001", "kind": "predicted_failure", "severity": "warning",
    ...            "state": "open"}, {"device_id": "vent-0002", "kind": "anomaly",
    ...            "severity": "critical", "state": "open"}]
    >>> score_devices(truth, alerts, datetime(2026, 1, 2, tzinfo=UTC))["precision"]
    0.5
    """
    faulty = sorted(
        {t["device_id"] for t in truth if datetime.fromisoformat(t["onset"]) <= run_end}
    )
    alerted = sorted(
        {
            a["device_id"]
            for a in alerts
            if a["state"] != "resolved"  # opened, or updated (an info alert may become a page)
            and a["kind"] in DETECTION_KINDS
            and a["severity"] in ("warning", "critical")
        }
    )
    hits = set(faulty) & set(alerted)
    return {
        "faulty_devices": faulty,
        "alerted_devices": alerted,
        "precision": round(len(hits) / len(alerted), 3) if alerted else 0.0,
        "recall": round(len(hits) / len(faulty), 3) if faulty else 0.0,
    }


def demo_token(tokens_file: Path) -> str:
    """A new admin token named ``demo`` in ``tokens_file`` (the file holds only its hash)."""
    made: list[str] = []

    def add(store: TokenStore) -> TokenStore:
        if store.get("demo") is not None:
            store = store.revoke("demo")
        store, token = store.add("demo", "admin", now=datetime.now(UTC))
        made.append(token)
        return store

    TokenFile(tokens_file).change(add)
    return made[0]


def run_demo(options: DemoOptions, console: Console) -> dict[str, Any]:
    """Run the demo; return the final summary (what ``--json`` prints)."""
    plan = demo_plan(options)
    device_types = {d.device_id: d.device_type for d in plan.devices}
    if options.workdir.exists():
        shutil.rmtree(options.workdir)
    logs = options.workdir / "logs"
    stack = Stack(
        options.workdir / "stack",
        services=["mosquitto", "kafka", "influxdb"],
        device_ids=list(device_types),
    )
    with ExitStack() as cleanup:
        with console.status("starting Mosquitto, Kafka and InfluxDB"):
            state = stack.up()
        cleanup.callback(stack.down)
        bootstrap, influx_url = state.url("kafka"), state.url("influxdb")
        topics = kafka_topics()
        ensure_topics(bootstrap, 6, {}, topics)
        tokens_file = options.workdir / "api-tokens.json"
        token = demo_token(tokens_file)
        env = {
            "TWIN_STACK__DIR": str(options.workdir / "stack"),
            # The demo's own tokens, whatever the caller's environment says.
            "TWIN_API__TOKENS_FILE": str(tokens_file),
            "TWIN_API__TOKENS": "",
        }
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        worker_args = [
            "worker",
            "--web-port",
            str(port),
            "--data-dir",
            str(options.workdir / "worker"),
        ]
        bridge = ManagedProcess.twin_stream("bridge", ["bridge"], logs / "bridge.log", env=env)
        worker = ManagedProcess.twin_stream(
            "worker",
            worker_args,
            logs / "worker.log",
            env=env,
            # It scores (/ready: partitions assigned, tables recovered, streams running) and its
            # API takes the demo's token.
            ready=all_of(
                answers(f"{api}/ready"),
                answers(f"{api}/twins", headers={"Authorization": f"Bearer {token}"}),
            ),
        )
        sink = ManagedProcess.twin_stream("sink", ["sink"], logs / "sink.log", env=env)
        with console.status("starting the bridge, a worker and the sink"):
            for process in (bridge, worker, sink):
                cleanup.enter_context(process)
            worker.wait_ready(180, interval=1.0)
        console.print(
            f"twin API: http://127.0.0.1:{port} (admin token for this run: {token}; e.g. "
            f"curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/twins)",
            soft_wrap=True,
            highlight=False,
        )

        observer = Observer(bootstrap, topics)
        stop_observer = threading.Event()
        observer_thread = threading.Thread(target=observer.run, args=(stop_observer,), daemon=True)
        observer_thread.start()
        cleanup.callback(observer_thread.join, 30)
        cleanup.callback(stop_observer.set)

        passwords = {a.username: a.password for a in stack.accounts}
        fleet = MqttFleet(
            plan,
            host="127.0.0.1",
            port=state.services["mosquitto"].port,
            passwords=passwords,
            rate_hz=options.rate_hz,
            speed=options.speed,
        )
        start = datetime.now(UTC)
        since = time.time()
        runner = threading.Thread(target=fleet.run, args=(options.duration_s,), daemon=True)
        runner.start()
        cleanup.callback(runner.join, 30)
        cleanup.callback(fleet.stop)
        stored, last_count = 0, 0.0
        begun = time.monotonic()

        def totals() -> dict[str, int]:
            return {
                "published": fleet.stats.published,
                "telemetry": observer.counts.get("telemetry", 0),
                "scores": observer.counts.get("scores", 0),
                "stored": stored,
            }

        def frame() -> Any:
            return render(
                observer,
                device_types=device_types,
                totals=totals(),
                elapsed_s=min(time.monotonic() - begun, options.duration_s),
                duration_s=options.duration_s,
                speed=options.speed,
            )

        with Live(frame(), console=console, refresh_per_second=2, transient=False) as live:
            drain_until = None
            while True:
                now = time.monotonic()
                if now - last_count >= 3.0:
                    last_count = now
                    try:
                        stored = count_points(influx_url, since)
                    except OSError:
                        pass  # the TSDB is busy; the count catches up next time
                observer.snapshot(totals())
                live.update(frame())
                if runner.is_alive():
                    time.sleep(0.5)
                    continue
                # The fleet is done: let the pipeline catch up (bounded), then stop.
                drain_until = drain_until or now + 120.0
                caught_up = observer.counts.get("scores", 0) >= fleet.stats.published
                if (caught_up and stored >= fleet.stats.published) or now > drain_until:
                    break
                time.sleep(0.5)
        run_end = datetime.now(UTC)
        elapsed = time.monotonic() - begun
        stop_observer.set()
        observer_thread.join(30)

        truth = ground_truth(plan, start, options.speed)
        with observer.lock:
            alerts = list(observer.alerts)
            latencies = list(observer.latencies_ms)
        summary: dict[str, Any] = score_devices(truth, alerts, run_end)
        published = fleet.stats.published
        summary.update(
            {
                "report": str(options.report.resolve()),
                "msgs_per_s": round(published / min(elapsed, options.duration_s), 1),
                "published": published,
                "scored": observer.counts.get("scores", 0),
                "stored": stored,
                "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else 0.0,
                "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else 0.0,
                "speed": options.speed,
                "duration_s": options.duration_s,
                "devices": options.devices,
            }
        )
        with console.status("writing the report"):
            write_report(
                options.report, observer, summary=summary, truth=truth, device_types=device_types
            )
        with console.status("stopping every process"):
            cleanup.close()
    return summary
