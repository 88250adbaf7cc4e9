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
   duplicated or orphaned.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.chaos.collector import Collector
from twin_stream.devtools.chaos.counting import (
    AlertEvent,
    by_window,
    condition_key,
    count_readings,
    counts_of,
    recovery_targets,
    recovery_time,
    unsent_in_window,
    window_readings,
)
from twin_stream.devtools.chaos.counting import alert_findings as find_alert_issues
from twin_stream.devtools.chaos.faults import DEFAULT_FAULTS, FAULTS, Fault, FaultTiming
from twin_stream.devtools.chaos.platform import Platform
from twin_stream.devtools.chaos.tsdb import devices_stored_since, stored_counts, stored_readings
from twin_stream.errors import TwinStreamError

__all__ = ["ChaosOptions", "chaos_command", "chaos_plan", "run_chaos"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class ChaosOptions:
    """One chaos run. The defaults are the full run; the CI test runs a shorter load."""

    faults: tuple[str, ...] = DEFAULT_FAULTS
    devices: int = 50
    rate: float = 200.0  # readings/s of the whole fleet
    timing: FaultTiming = FaultTiming()
    #: Steady load before each fault (also after the last one, before the fleet stops).
    settle_s: float = 20.0
    #: How long to wait for scoring and storing to resume after a fault before moving on.
    recovery_timeout_s: float = 180.0
    startup_timeout_s: float = 300.0
    drain_timeout_s: float = 300.0
    #: ...and stops waiting when nothing more was scored or stored for this long.
    drain_quiet_s: float = 30.0
    #: The simulated fleet: its physics run this much faster than the clock (degradations and
    #: sensor faults show within the run and open alerts), a fifth of it faulty.
    speed: float = 120.0
    fault_fraction: float = 0.2
    seed: int = 7
    workdir: Path = Path(".twin-stream/chaos")
    #: Recovery target after a worker restart (issue 14): scoring resumes within this.
    worker_target_s: float = 15.0

    @property
    def rate_hz(self) -> float:
        """Readings/s of each device."""
        return self.rate / self.devices

    def expected_s(self) -> float:
        per_fault = self.settle_s + self.timing.outage_s + 45.0
        return 90.0 + len(self.faults) * per_fault + self.settle_s + 60.0


def chaos_command(options: ChaosOptions, fault: str | None = None) -> str:
    """The command that runs ``fault`` (or the whole run) with these options' load."""
    which = f" --faults {fault}" if fault else ""
    return f"twin-stream chaos{which} --devices {options.devices} --rate {options.rate:g}"


def chaos_plan(options: ChaosOptions) -> FleetPlan:
    """The fleet: a fifth of it with a degradation or a sensor fault that opens alerts during
    the run. The simulator's network faults are left out: a device offline on its own would
    blur what the platform lost and when it recovered."""
    plan = FleetPlan.generate(
        options.devices,
        hours=options.expected_s() * options.speed / 3600.0,
        fault_fraction=options.fault_fraction,
        seed=options.seed,
        start_hour=12.0,
    )
    for device in plan.devices:
        device.faults = [f for f in device.faults if f.category != "connectivity"]
    return plan


@dataclass
class _FaultRun:
    """What happened around one fault while the run went on (counted after the run)."""

    fault: Fault
    window_start: float
    start_counts: dict[str, int]
    began: float = 0.0
    ended: float = 0.0
    end_counts: dict[str, int] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)
    ready_s: float | None = None
    stored_recovery_s: float | None = None
    #: resident memory (MiB) of the bridge and of Mosquitto: before the fault, its peak while
    #: the fault lasted, and once scoring and storing resumed (``rss_mb``)
    rss_mb: dict[str, dict[str, float | None]] = field(default_factory=dict)


class _Run:
    """The live part of a run: the platform, the fleet, the collector, the clock."""

    def __init__(
        self,
        options: ChaosOptions,
        platform: Platform,
        fleet: MqttFleet,
        fleet_thread: threading.Thread,
        collector: Collector,
        since: float,
        say: Say,
        log: Say,
    ) -> None:
        self.options = options
        self.since = since  # the first reading's time, give or take: points are counted from it
        self.platform = platform
        self.fleet = fleet
        self.fleet_thread = fleet_thread
        self.collector = collector
        self.say, self.log = say, log
        self.influx = platform.url("influxdb")
        #: (when, process, exit code) of every process that exited by itself.
        self.exits: list[tuple[float, str, int | None]] = []

    def seqs(self) -> dict[str, list[int]]:
        return dict(self.fleet.stats.published_seqs)  # a copy of the dict, not of the lists

    def snapshot(self) -> dict[str, int]:
        return counts_of(self.seqs())

    def sleep(self, seconds: float) -> None:
        """Sleep, but stop the run if the fleet died (nothing would be published)."""
        deadline = time.monotonic() + seconds
        while True:
            if not self.fleet_thread.is_alive():
                raise TwinStreamError("the simulated fleet stopped publishing (see the log)")
            if self.collector.error is not None:
                raise TwinStreamError(f"the run's Kafka reader failed: {self.collector.error}")
            self.supervise()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))

    def wait_until(self, what: str, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            self.sleep(0.5)
        self.log(f"[yellow]{what}: not within {timeout:g} s[/]")
        return False

    def supervise(self) -> None:
        """Start again at once any process that exited by itself, as the compose file's
        ``restart: unless-stopped`` would; each exit is recorded (and said)."""
        for name, child in self.platform.children.items():
            if not child.alive():
                code = child.exit_code
                self.exits.append((time.time(), name, code))
                self.log(f"[red]{name} exited by itself (code {code})[/]: started again")
                child.start()

    def warm_up(self) -> list[str]:
        """Wait until every device is scored and stored (the baseline: no fault yet); return
        what had to be done to get there (said in the figures)."""
        devices = {d.device.device_id for d in self.fleet.connections}
        o = self.options
        notes: list[str] = []
        self.say("waiting until the workers score every device")

        def all_scored() -> bool:
            return devices <= set(self.collector.scores())

        def all_stored() -> bool:
            try:
                return devices <= devices_stored_since(self.influx, self.since)
            except (OSError, ValueError):
                return False

        if not self.wait_until("every device scored", all_scored, o.startup_timeout_s):
            tails = "\n".join(
                self.platform.children[w].tail(15) for w in self.platform.worker_names()
            )
            raise TwinStreamError(f"the workers did not score every device in time:\n{tails}")
        self.say("waiting until the sink stores every device")
        if not self.wait_until("every device stored", all_stored, 60.0):
            # Seen here: kafka-python's consumer joined its group before the topics' metadata
            # reached it ("No partition metadata for topic ..."), was assigned nothing, and
            # stayed so. A restart is what an operator would do; the figures say it was done.
            note = (
                "the sink stored nothing 60 s after every device was scored "
                f"(last lines of its log: {self.platform.children['sink'].tail(3)!r}); "
                "it was restarted before the first fault"
            )
            self.log(f"[yellow]{note}[/]")
            notes.append(note)
            self.platform.children["sink"].kill()
            self.platform.children["sink"].start()
            if not self.wait_until("every device stored", all_stored, o.startup_timeout_s):
                tail = self.platform.children["sink"].tail(15)
                raise TwinStreamError(f"the sink did not store every device in time:\n{tail}")
        if self.platform.has_ready:
            for worker in self.platform.worker_names():
                self.wait_until(f"{worker} ready", partial(self.platform.ready, worker), 120)
        return notes

    def fault(self, index: int, fault: Fault) -> _FaultRun:
        o = self.options
        head = f"[{index + 1}/{len(o.faults)}] {fault.name}"
        run = _FaultRun(fault, time.time(), self.snapshot())
        self.say(f"{head}: steady load for {o.settle_s:g} s")
        self.sleep(o.settle_s)
        self.say(f"{head}: {fault.does}")

        def mark_end() -> None:
            run.ended, run.end_counts = time.time(), self.snapshot()

        run.began = time.time()
        watched = ("bridge", "mosquitto")  # what holds the backlog while Kafka is away
        before = {name: self.platform.rss_mb(name) for name in watched}
        peaks: dict[str, float] = {}
        sampling = threading.Event()

        def sample() -> None:  # the peak while the fault lasts, twice a second
            while not sampling.wait(0.5):
                for name in watched:
                    rss = self.platform.rss_mb(name)
                    if rss is not None:
                        peaks[name] = max(peaks.get(name, 0.0), rss)

        sampler = threading.Thread(target=sample, name="chaos-rss")
        sampler.start()
        try:
            fault.inject(self.platform, o.timing, mark_end)
        finally:
            sampling.set()
            sampler.join()
        self.say(f"{head}: waiting for scoring and storing to resume")
        # The devices waited for are those that publish again within the grace period (all of
        # them, unless one is offline on its own); until it has passed, the clocks run anyway.
        grace_until = run.ended + max(5.0, 3.0 / o.rate_hz)
        targets: dict[str, int] | None = None
        stored_first: dict[str, float] = {}  # device: when a reading of it made after the end
        last_query = 0.0  # was first seen stored (polled every second)
        worker = fault.restarts_worker if self.platform.has_ready else None
        deadline = run.ended + o.recovery_timeout_s
        scored_s: float | None = None
        while time.time() < deadline:
            now = time.time()
            if worker and run.ready_s is None and self.platform.ready(worker):
                run.ready_s = round(now - run.ended, 2)
            if now - last_query >= 1.0:
                last_query = now
                try:
                    for device in devices_stored_since(self.influx, run.ended):
                        stored_first.setdefault(device, now)
                except (OSError, ValueError):
                    pass  # the TSDB is down or busy: asked again in a second
            if targets is None and now >= grace_until:
                targets = run.targets = recovery_targets(
                    self.seqs(), run.end_counts, self.snapshot()
                )
            if targets is not None:
                scored_s = recovery_time(run.ended, targets, self.collector.scores())
                stored = all(d in stored_first for d in targets)
                if scored_s is not None and stored and (not worker or run.ready_s is not None):
                    break
            self.sleep(0.5)
        run.rss_mb = {
            name: {
                "before": before[name],
                "peak_during": peaks.get(name),
                "after": self.platform.rss_mb(name),
            }
            for name in watched
        }
        if run.targets and all(d in stored_first for d in run.targets):
            run.stored_recovery_s = round(max(stored_first[d] for d in run.targets) - run.ended, 2)

        def shown(seconds: float | None) -> str:
            return f"{seconds:.1f} s" if seconds is not None else "not within the timeout"

        self.log(
            f"{head}: scoring resumed after {shown(scored_s)}, "
            f"storing after {shown(run.stored_recovery_s)}"
        )
        return run

    def drain(self) -> bool:
        """Wait until every published reading is scored and stored, or until neither count has
        moved for ``drain_quiet_s`` (what is missing then is lost), at most ``drain_timeout_s``.
        True if everything arrived."""
        seqs = self.seqs()
        published = {(d, s) for d, ss in seqs.items() for s in ss}
        expected = {d: len(ss) for d, ss in seqs.items()}
        o = self.options
        self.say("the fleet stopped: waiting until the pipeline has scored and stored everything")
        deadline = time.monotonic() + o.drain_timeout_s
        progress, moved = (-1, -1), time.monotonic()
        while time.monotonic() < deadline:
            scored = len(published & set(self.collector.scored_counts()))
            try:
                stored = stored_counts(self.influx, self.since)
            except (OSError, ValueError):
                stored = None  # the TSDB is busy: asked again in a moment
            if stored is not None:
                n_stored = sum(min(stored.get(d, 0), n) for d, n in expected.items())
                if scored == len(published) and n_stored == len(published):
                    return True
                if (scored, n_stored) != progress:
                    progress, moved = (scored, n_stored), time.monotonic()
            if time.monotonic() - moved > o.drain_quiet_s:
                missing = len(published) - min(progress)
                self.log(
                    f"[yellow]the pipeline stopped short: {missing} reading(s) not scored or "
                    f"not stored after {o.drain_quiet_s:g} s without progress[/]"
                )
                return False
            time.sleep(2.0)
        self.log(f"[yellow]the pipeline had not drained after {o.drain_timeout_s:g} s[/]")
        return False

    def wait_until_quiet(self, what: str, done: Callable[[], bool], timeout: float) -> bool:
        """:meth:`wait_until` once the fleet has stopped (its thread is no longer watched)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(1.0)
        self.log(f"[yellow]{what}: not within {timeout:g} s[/]")
        return False


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
        run = _Run(options, platform, fleet, fleet_thread, collector, since, say, log)
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
        figures = _figures(
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


def _alert_brief(event: AlertEvent, starts: list[float], runs: list[_FaultRun]) -> dict[str, Any]:
    """One alert event, short: its condition, its seqs and the window it arrived in."""
    a = event.alert
    i = next((k for k in range(len(starts) - 1, -1, -1) if event.arrived >= starts[k]), -1)
    window = "baseline" if i < 0 else runs[i].fault.name if i < len(runs) else "after"
    return {
        "alert_id": event.alert_id,
        "condition": "/".join(condition_key(a)),
        "state": event.state,
        "seq_first": a.get("seq_first"),
        "seq_last": a.get("seq_last"),
        "opened_at": a.get("opened_at"),
        "window": window,
    }


def _figures(
    options: ChaosOptions,
    runs: list[_FaultRun],
    *,
    seqs: dict[str, list[int]],
    scored: Any,
    scores: dict[str, list[tuple[float, int]]],
    stored: Any,
    relayed: Any,
    alerts: list[AlertEvent],
    open_now: set[str] | None,
    stopped_at: float,
    exits: list[tuple[float, str, int | None]],
) -> dict[str, Any]:
    """Each window's counts, from what the run recorded and read back."""
    found = find_alert_issues(alerts, open_now or set())
    starts = [r.window_start for r in runs] + [stopped_at]
    opened = by_window((e.arrived for e in found.opened), starts)
    duplicated = by_window((e.arrived for e in found.duplicates), starts)
    repeated = by_window((e.arrived for e in found.repeated), starts)
    orphaned = by_window((e.arrived for e in found.orphaned), starts)
    final = counts_of(seqs)

    def readings(start: dict[str, int], end: dict[str, int]) -> dict[str, Any]:
        count = count_readings(window_readings(seqs, start, end), scored, stored, relayed)
        return {
            "published": count.published,
            "scored": count.scored,
            "stored": count.stored,
            "lost": count.lost,
            "duplicates": count.duplicates,
            "lost_unscored": count.lost_unscored,
            "lost_unstored": count.lost_unstored,
            "lost_before_kafka": count.lost_before_kafka,
            "duplicate_scores": count.duplicate_scores,
            "redelivered": count.redelivered,
            "not_sent": unsent_in_window(seqs, start, end),
            "lost_examples": [list(r) for r in count.lost_readings],
        }

    faults = []
    for i, r in enumerate(runs):
        end = runs[i + 1].start_counts if i + 1 < len(runs) else final
        row = {"fault": r.fault.name, **readings(r.start_counts, end)}
        recovery = recovery_time(r.ended, r.targets, scores)
        row.update(
            {
                "duplicate_alerts": duplicated[i],
                "repeated_alert_opens": repeated[i],
                "orphaned_alerts": orphaned[i] if open_now is not None else None,
                "alerts_opened": opened[i],
                "recovery_s": recovery,
                "stored_recovery_s": r.stored_recovery_s,
                "ready_s": r.ready_s,
                "fault_s": round(r.ended - r.began, 1),
                "window_s": round(
                    (runs[i + 1].window_start if i + 1 < len(runs) else stopped_at)
                    - r.window_start,
                    1,
                ),
                "devices_waited_for": len(r.targets),
                "rss_mb": r.rss_mb,
                "does": r.fault.does,
                "command": chaos_command(options, r.fault.name),
                "exits": [
                    f"{name} found exited by itself (code {code}) {at - r.ended:+.1f} s from "
                    "the end of the fault; started again"
                    for at, name, code in exits
                    if starts[i] <= at < starts[i + 1]
                ],
            }
        )
        if r.fault.restarts_worker:
            row["recovery_target_s"] = options.worker_target_s
        faults.append(row)
    first = runs[0].start_counts if runs else final
    baseline = {
        **readings({}, first),
        "duplicate_alerts": duplicated[-1],
        "orphaned_alerts": orphaned[-1] if open_now is not None else None,
        "alerts_opened": opened[-1],
    }
    after = len(runs)
    return {
        "faults": faults,
        "baseline": baseline,
        "after_the_fleet_stopped": {
            "alerts_opened": opened[after],
            "duplicate_alerts": duplicated[after],
            "orphaned_alerts": orphaned[after] if open_now is not None else None,
        },
        "alerts": {
            "events": len(alerts),
            "opened": len(found.opened),
            "duplicates": len(found.duplicates),
            "redelivered_events": len(found.redelivered),
            "orphaned": len(found.orphaned) if open_now is not None else None,
            "open_at_the_end": len(open_now) if open_now is not None else None,
            "duplicate_ids": [e.alert_id for e in found.duplicates][:10],
            "orphaned_ids": [e.alert_id for e in found.orphaned][:10],
            # What to read when one is found: which device, condition and window.
            "duplicate_events": [_alert_brief(e, starts, runs) for e in found.duplicates][:10],
            "orphaned_events": [_alert_brief(e, starts, runs) for e in found.orphaned][:10],
        },
        "load": {
            "devices": options.devices,
            "rate": options.rate,
            "rate_per_device_hz": round(options.rate_hz, 3),
            "speed": options.speed,
            "fault_fraction": options.fault_fraction,
            "seed": options.seed,
        },
        "kill_pause_s": options.timing.kill_pause_s,
        "outage_s": options.timing.outage_s,
        "settle_s": options.settle_s,
        "command": chaos_command(options),
    }
