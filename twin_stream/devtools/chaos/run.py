"""``twin-stream chaos``: break the running platform one fault at a time under a steady load,
and count, by device and seq, what became of every reading.

One run, start to end:

1. the local stack (Mosquitto, Kafka, InfluxDB) and the pipeline's processes (the bridge, two
   Faust workers, the sink) start under the run's directory (:mod:`.platform`);
2. a simulated fleet publishes steadily for the whole run (:class:`MqttFleet`, every published
   seq kept), and a collector reads the scores, the alerts and the telemetry records off Kafka
   (:mod:`.collector`); the run waits until every device is scored (the *baseline* window);
3. each fault (:mod:`.faults`) in turn owns a window of the run: ``settle_s`` of steady load,
   the fault, then the wait until scoring (and storing) resumed for every device;
4. the fleet stops; the pipeline drains; the telemetry points are read back from InfluxDB and
   each window's readings are counted (:mod:`.counting`): lost, duplicated, and the alerts
   duplicated or orphaned (:mod:`.figures`).

The live part (the baseline, each fault, the drain) is in :mod:`.live`, the run's options in
:mod:`.options`.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from typing import Any

from simulators.mqtt_fleet import MqttFleet
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.chaos.collector import Collector
from twin_stream.devtools.chaos.faults import FAULTS
from twin_stream.devtools.chaos.figures import chaos_figures
from twin_stream.devtools.chaos.live import LiveRun, Say
from twin_stream.devtools.chaos.options import ChaosOptions, chaos_plan
from twin_stream.devtools.chaos.platform import Platform
from twin_stream.devtools.chaos.tsdb import stored_readings
from twin_stream.errors import TwinStreamError

__all__ = ["run_chaos"]


def run_chaos(
    options: ChaosOptions, say: Say | None = None, log: Say | None = None
) -> dict[str, Any]:
    """Run the faults of ``options`` in turn under a steady load; return the figures.

    ``say`` is told what the run is doing (a status line), ``log`` what it found on the way
    (a line to keep). ``options.workdir`` gets the stack, each process's log and the figures'
    raw material; it is made if missing and must be empty."""
    say = say or (lambda _: None)
    log = log or (lambda _: None)
    unknown = [f for f in options.faults if f not in FAULTS]
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {list(FAULTS)}")
    root = options.workdir.resolve()
    if root.exists() and any(root.iterdir()):
        raise TwinStreamError(f"the chaos run's directory {root} is not empty")
    root.mkdir(parents=True, exist_ok=True)
    plan = chaos_plan(options)
    brokers = max(FAULTS[name].brokers for name in options.faults)
    platform = Platform(root, [d.device_id for d in plan.devices], kafka_brokers=brokers)
    started = time.monotonic()
    with ExitStack() as cleanup:
        say("starting Mosquitto, Kafka and InfluxDB, then the bridge, two workers and the sink")
        cleanup.callback(platform.down)
        platform.up()
        platform.find_readiness()
        log(
            "workers' readiness: "
            + ("GET /ready" if platform.has_ready else "no GET /ready: scores resuming")
        )
        collector = Collector(platform.url("kafka"), platform.topics)
        collector.start()
        cleanup.callback(collector.stop)
        fleet = MqttFleet(
            plan,
            host="127.0.0.1",
            port=platform.mqtt_port,
            passwords=platform.passwords,
            rate_hz=options.rate_hz,
            speed=options.speed,
            record_seqs=True,
        )
        since = time.time() - 60.0  # the readings' own clocks; the stack is this run's alone
        fleet_thread = threading.Thread(target=fleet.run, args=(7 * 24 * 3600.0,), name="fleet")
        fleet_thread.start()
        cleanup.callback(fleet_thread.join, 60)
        cleanup.callback(fleet.stop)
        run = LiveRun(options, platform, fleet, fleet_thread, collector, since, say, log)
        startup_notes = run.warm_up()
        runs = [run.fault(i, FAULTS[name]) for i, name in enumerate(options.faults)]
        say(f"steady load for {options.settle_s:g} s after the last fault")
        run.sleep(options.settle_s)
        stopped_at = time.time()
        fleet.stop()
        fleet_thread.join(60)
        drained = run.drain()
        say("waiting until no alert event has come for 5 s")
        run.wait_until_quiet(
            "alerts quiet", lambda: time.time() - collector.last_alert_at() > 5.0, 60.0
        )
        # An alert the workers resolved a moment ago may not be on the topic yet: an alert
        # counts as held open if either of two answers, 5 s apart, holds it.
        answers = [platform.open_alert_ids()]
        time.sleep(5.0)
        answers.append(platform.open_alert_ids())
        held = [a for a in answers if a is not None]
        open_now = set().union(*held) if held else None
        say("reading every stored point back from InfluxDB")
        seqs = run.seqs()
        stored = stored_readings(platform.url("influxdb"), sorted(seqs), since)
        exited = [f"{name} (code {code})" for _, name, code in run.exits]
        with (platform.logs / "alerts.jsonl").open("w") as out:  # every alert event, to read
            for event in collector.alerts():
                out.write(json.dumps({"arrived": event.arrived, **event.alert}) + "\n")
        figures = chaos_figures(
            options,
            runs,
            seqs=seqs,
            scored=collector.scored_counts(),
            scores=collector.scores(),
            stored=stored,
            relayed=collector.relayed(),
            alerts=collector.alerts(),
            open_now=open_now,
            stopped_at=stopped_at,
            exits=run.exits,
        )
        figures.update(
            {
                "drained": drained,
                "unacked": fleet.stats.published - fleet.stats.acked,
                "dropped_by_devices": fleet.stats.dropped,
                "readiness": "GET /ready" if platform.has_ready else "scores resuming",
                "exited": exited,
                "startup_notes": startup_notes,
                "logs": str(platform.logs),
                "undecodable_records": collector.undecodable,
            }
        )
        say("stopping every process")
    figures["duration_s"] = round(time.monotonic() - started, 1)
    figures["machine"] = machine_info()
    return figures
