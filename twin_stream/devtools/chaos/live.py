"""The live part of a chaos run: the platform, the fleet, the collector and the clock
(:class:`LiveRun`), from the baseline through each fault (:class:`FaultRun`, what happened
around it) to the drain once the fleet stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from simulators.mqtt_fleet import MqttFleet
from twin_stream.devtools.chaos.collector import Collector
from twin_stream.devtools.chaos.counting import counts_of, recovery_targets, recovery_time
from twin_stream.devtools.chaos.faults import Fault
from twin_stream.devtools.chaos.options import ChaosOptions
from twin_stream.devtools.chaos.platform import Platform
from twin_stream.devtools.chaos.tsdb import devices_stored_since, stored_counts
from twin_stream.errors import TwinStreamError

__all__ = ["FaultRun", "LiveRun", "Say"]

Say = Callable[[str], None]


@dataclass
class FaultRun:
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


class LiveRun:
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

    def fault(self, index: int, fault: Fault) -> FaultRun:
        o = self.options
        head = f"[{index + 1}/{len(o.faults)}] {fault.name}"
        run = FaultRun(fault, time.time(), self.snapshot())
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
