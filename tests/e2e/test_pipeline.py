"""The whole pipeline on real services: simulator -> Mosquitto -> bridge -> Kafka -> two Faust
workers -> Kafka -> sink -> InfluxDB (v2 write API), and desired state back."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from simulators.faults import Fault
from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import FleetStats, MqttFleet
from tests.conftest import close, connect, http, stored_seqs, wait_until
from tests.e2e.conftest import RunningPipeline, StartPipeline
from twin_stream.devtools.demo.run import demo_token
from twin_stream.domain.topics import mqtt_topic

DEVICES = 20

pytestmark = pytest.mark.services


@dataclass
class Pipeline(RunningPipeline):
    """The running pipeline, with the admin token the tests call the twin API with."""

    def http(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        status, answer, _ = http(method, url, self.tokens["admin"], body, timeout=20)
        return status, answer

    def api(self, worker: int) -> str:
        return self.workers.url(worker)

    def start_worker(self, i: int) -> None:
        """Start worker ``i`` again (its port, its data), and wait until it scores."""
        self.workers.start(i).wait_ready(120)
        assert self.http("GET", f"{self.api(i)}/twins")[0] == 200

    def kill_worker(self, i: int) -> None:
        self.workers.kill(i)

    def serving(self, device_ids: list[str]) -> bool:
        """Both workers ready, each of ``device_ids`` owned by exactly one of them, and either
        one answering for every one of them."""
        return self.workers.settled(device_ids)

    def caught_up(self, fleet: MqttFleet) -> bool:
        """Every reading the fleet sent has reached its twin (on whichever worker owns it)."""
        status, twins = self.http("GET", f"{self.api(0)}/twins")
        if status != 200:
            return False
        last = {t["device_id"]: t["last_seq"] for t in twins}
        return all(last.get(c.device.device_id) == c.device.seq - 1 for c in fleet.connections)

    def settled(self) -> bool:
        """Both workers answer, and for every device the same twin, whichever is asked."""
        answers = [self.http("GET", f"{self.api(i)}/twins") for i in sorted(self.workers.ports)]
        if any(status != 200 for status, _ in answers):
            return False
        views = [{t["device_id"]: (t["version"], t["quality"]) for t in b} for _, b in answers]
        return all(v == views[0] for v in views[1:])

    def diagnostics(self) -> str:
        """Each worker's own twins' quality counters of pump-0001 and the tail of its log."""
        lines = []
        for i in sorted(self.workers.ports):
            status, local = self.http("GET", f"{self.api(i)}/twins?scope=local")
            mine = [t for t in local or [] if t["device_id"] == "pump-0001"]
            here = mine[0]["quality"] if mine else None
            lines.append(f"worker {i}: HTTP {status}, pump-0001 here: {here}")
            log = (self.root / f"worker-{i}.log").read_text(errors="replace")
            lines.append(log[-2500:])
        return "\n".join(lines)

    def stored_seqs(self, since: float | None = None) -> list[tuple[str, int]]:
        """(device_id, seq) of every telemetry point stored (from ``since``, unix seconds)."""
        return stored_seqs(self.influx_url, "twin", since)


@pytest.fixture(scope="module")
def pipeline(
    start_pipeline: StartPipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    tokens_file = tmp_path_factory.mktemp("pipeline-tokens") / "api-tokens.json"
    admin = demo_token(tokens_file)  # an admin token, as the demo makes its own
    with start_pipeline(
        Pipeline,
        "e2e",
        tokens={"admin": admin},
        worker_env={"TWIN_API__TOKENS_FILE": str(tokens_file), "TWIN_API__TOKENS": ""},
        worker_args=["--checkpoint-every", "50", "--checkpoint-interval", "5"],
        reader=admin,
        own_tsdb=True,  # a test stops it for an outage
    ) as p:
        yield p


def faulty_fleet() -> FleetPlan:
    """20 healthy devices, except pump-0001 whose motor wears out during the run.

    The simulated clock starts at noon (pinned, so the run does not depend on when CI runs):
    the MRI scanners are mid-way through their working day.
    """
    plan = FleetPlan.generate(DEVICES, hours=5, fault_fraction=0.0, seed=51, start_hour=12.0)
    pump = next(d for d in plan.devices if d.device_id == "pump-0001")
    pump.model.rate = 100.0
    pump.faults.append(
        Fault(
            "motor_wear",
            "degradation",
            "motor_current",
            onset_s=0.5 * 3600,
            duration_s=4.5 * 3600,
            exponent=1.2,
        )
    )
    return plan


def test_a_failing_device_is_alerted_and_healthy_ones_are_not(pipeline: Pipeline) -> None:
    # 5 readings/s, clock 120x: 150 s of test are 5 simulated hours and 750 readings/device;
    # failure prediction needs 360 readings of history, so the pump is flagged after ~75 s of
    # data. On a loaded 2-core machine the workers may lag behind the fleet: the test waits
    # until they have scored every reading the fleet sent, then judges the whole run. Offline
    # alerts of the fleet's own shutdown do not count: the claim is about detection.
    plan = faulty_fleet()
    ids = sorted(d.device_id for d in plan.devices)
    fleet = pipeline.mqtt_fleet(plan, rate_hz=5.0, speed=120.0)
    runner = threading.Thread(target=fleet.run, args=(150.0,))
    runner.start()

    def detection_alerts(worker: int) -> list[dict[str, Any]] | None:
        """Open paging alerts other than offline ones (None while the worker cannot say)."""
        status, alerts = pipeline.http("GET", f"{pipeline.api(worker)}/alerts?state=open")
        if status != 200:
            return None
        return [
            a for a in alerts if a["severity"] in ("warning", "critical") and a["kind"] != "offline"
        ]

    runner.join()
    # Judged once the workers have scored every reading of the run (on a loaded machine they
    # lag behind the fleet), not at some moment while readings are still on their way.
    assert wait_until(lambda: pipeline.caught_up(fleet), timeout=300, interval=2.0), (
        pipeline.diagnostics()
    )
    assert wait_until(lambda: pipeline.serving(ids), timeout=120, interval=2.0), (
        pipeline.diagnostics()
    )
    status, pump = pipeline.http("GET", f"{pipeline.api(0)}/twins/pump-0001")
    notifying = detection_alerts(1)
    assert notifying is not None, pipeline.diagnostics()
    assert any(a["device_id"] == "pump-0001" for a in notifying), (
        "no alert for the failing pump",
        status,
        pump and pump.get("quality"),
    )
    # What the healthy devices were sent and reported, should one of them be alerted.
    twins = {t["device_id"]: t for t in pipeline.http("GET", f"{pipeline.api(0)}/twins")[1]}
    assert {a["device_id"] for a in notifying} == {"pump-0001"}, (
        notifying,
        fleet.stats.desired_received,
        dict(fleet.stats.command_results),
        {
            a["device_id"]: (twins[a["device_id"]]["reported"], twins[a["device_id"]]["quality"])
            for a in notifying
        },
    )
    pump_alert = next(a for a in notifying if a["device_id"] == "pump-0001")
    assert "motor_current" in pump_alert["summary"]
    assert pump_alert["seq_last"] is not None and pump_alert["detector_version"]
    assert fleet.stats.dropped == 0


def test_bad_payloads_go_to_the_dlq_and_the_twin_counts_them(pipeline: Pipeline) -> None:
    device, _ = connect(
        pipeline.broker.port, "pump-0001", pipeline.broker.account("pump-0001").password
    )
    bad = [b"not json", b"{}" + b" " * 17000, b'{"v":1,"device_id":"pump-0001","seq":-4}']
    try:
        for payload in bad:
            device.publish(mqtt_topic("pump-0001", "telemetry"), payload, qos=1).wait_for_publish(5)
    finally:
        close(device)
    letters: list[dict[str, Any]] = []
    with KafkaConsumer(
        pipeline.topics["dlq"],
        bootstrap_servers=pipeline.bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    ) as consumer:

        def lettered() -> set[bytes]:
            return {base64.b64decode(x["payload_base64"]) for x in letters}

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not lettered() >= set(bad):
            for records in consumer.poll(timeout_ms=500).values():
                letters += [orjson.loads(r.value) for r in records]
    assert {base64.b64decode(x["payload_base64"]) for x in letters} >= set(bad)
    assert all(x["reason"] for x in letters)

    seen: list[Any] = []

    def invalid_counted() -> bool:
        status, twin = pipeline.http("GET", f"{pipeline.api(0)}/twins/pump-0001")
        seen.append((status, twin and twin.get("quality")))
        return status == 200 and twin["quality"]["invalid"] >= 3

    assert wait_until(invalid_counted, timeout=120, interval=1.0), (
        seen[-3:],
        pipeline.diagnostics(),
    )


def test_desired_state_round_trip_and_offline_device_gets_it_on_reconnect(
    pipeline: Pipeline,
) -> None:
    plan = FleetPlan.generate(2, hours=1, fault_fraction=0.0, seed=53)  # pump-0001, vent-0002
    online = FleetPlan([plan.devices[0]], hours=1, seed=53)
    offline = FleetPlan([plan.devices[1]], hours=1, seed=53)
    # vent-0002 is offline now; its desired state is set anyway
    status, command = pipeline.http(
        "PUT", f"{pipeline.api(1)}/twins/vent-0002/desired", {"rate": 17.0}
    )
    assert status == 202, command
    # Each fleet runs until what the test waits for happened (at most 10 minutes), not for a
    # fixed time that a loaded machine may use up before the command reached the device.
    fleet = pipeline.mqtt_fleet(online, rate_hz=2.0)
    runner = threading.Thread(target=fleet.run, args=(600.0,))
    runner.start()
    try:
        status, command = pipeline.http(
            "PUT",
            f"{pipeline.api(0)}/twins/pump-0001/desired",
            {"rate": 42.0, "sample_interval_s": 0.5},
        )
        assert status == 202, command
        assert command["twin_version"] >= 1 and command["desired"]["rate"] == 42.0

        def pump_in_sync() -> bool:
            status, twin = pipeline.http("GET", f"{pipeline.api(1)}/twins/pump-0001")
            return (
                status == 200
                and twin["reported"].get("rate") == 42.0
                and twin["desired"].get("rate") == 42.0
                and twin["delta"] == {}
            )

        assert wait_until(pump_in_sync, timeout=60, interval=1.0)
    finally:
        fleet.stop()
        runner.join()
    back = pipeline.mqtt_fleet(offline, rate_hz=2.0)  # the ventilator comes back
    runner = threading.Thread(target=back.run, args=(600.0,))
    runner.start()

    def vent_in_sync() -> bool:
        status, twin = pipeline.http("GET", f"{pipeline.api(0)}/twins/vent-0002")
        return status == 200 and twin["reported"].get("rate") == 17.0 and twin["delta"] == {}

    try:
        assert wait_until(vent_in_sync, timeout=60, interval=1.0)
    finally:
        back.stop()
        runner.join()
    cleaner, _ = connect(
        pipeline.broker.port, pipeline.broker.bridge.username, pipeline.broker.bridge.password
    )
    try:
        for device in ("pump-0001", "vent-0002"):
            retained = cleaner.publish(mqtt_topic(device, "desired"), b"", qos=1, retain=True)
            retained.wait_for_publish(5)
    finally:
        close(cleaner)


def test_two_workers_share_partitions_and_either_answers_for_any_device(
    pipeline: Pipeline,
) -> None:
    ids = sorted(
        d.device_id for d in FleetPlan.generate(DEVICES, hours=1, fault_fraction=0, seed=1).devices
    )
    # (a worker that missed heartbeats on a loaded machine may be rejoining: wait for that)
    assert wait_until(lambda: pipeline.serving(ids), timeout=120, interval=2.0), (
        pipeline.diagnostics()
    )
    for worker in (0, 1):
        status, twins = pipeline.http("GET", f"{pipeline.api(worker)}/twins")
        assert status == 200
        assert sorted(t["device_id"] for t in twins) == ids
        for device_id in ids:
            status, twin = pipeline.http("GET", f"{pipeline.api(worker)}/twins/{device_id}")
            assert status == 200 and twin["device_id"] == device_id
    status, body = pipeline.http("GET", f"{pipeline.api(0)}/twins/no-such-device")
    assert status == 404 and "unknown device" in body["error"]
    status, body = pipeline.http("PUT", f"{pipeline.api(1)}/twins/pump-0001/desired", {"rate": -5})
    assert status == 422 and body["details"]
    status, body = pipeline.http(
        "PUT", f"{pipeline.api(1)}/twins/pump-0001/desired", {"colour": "red"}
    )
    assert status == 422


# Last: it kills a worker, and a SIGKILLed Faust worker's recovery can keep the group busy
# for minutes after on a loaded 2-core machine; the tests above need a settled group.


def test_every_reading_reaches_the_tsdb_once_through_a_worker_kill_and_a_tsdb_outage(
    pipeline: Pipeline,
) -> None:
    since = time.time()  # simulated devices restart their seqs each run: count this run only
    plan = FleetPlan.generate(DEVICES, hours=1, fault_fraction=0.0, seed=52)
    fleet = pipeline.mqtt_fleet(plan, rate_hz=5.0, record_seqs=True)
    # The fleet runs until the faults are over (at most 10 minutes); each step waits for the
    # data it needs, counted in readings, not for a time a loaded machine may stretch.
    runner = threading.Thread(target=fleet.run, args=(600.0,))
    runner.start()

    def published_more(than: int) -> Callable[[], bool]:
        return lambda: fleet.stats.published >= than

    tsdb = pipeline.tsdb
    assert tsdb is not None  # the module's own: stopped here for an outage
    try:
        # readings of this run flow through to the TSDB, then the kill comes mid-stream
        assert wait_until(lambda: len(pipeline.stored_seqs(since)) >= 500, timeout=120)
        pipeline.kill_worker(0)  # SIGKILL mid-run: no goodbye, no final commit
        assert wait_until(published_more(fleet.stats.published + 300), timeout=60)
        pipeline.start_worker(0)
        tsdb.stop_service("influxdb")
        # an outage as long as 30 s of the fleet's readings (3,000), however slow they come
        assert wait_until(published_more(fleet.stats.published + 3000), timeout=300)
        tsdb.start_service("influxdb")
        assert wait_until(published_more(fleet.stats.published + 500), timeout=60)
    finally:
        fleet.stop()
        runner.join()
    stats: FleetStats = fleet.stats
    assert stats.published == stats.acked and stats.dropped == 0
    published = {(d, int(s)) for d, seqs in stats.published_seqs.items() for s in seqs}

    assert wait_until(
        lambda: published <= set(pipeline.stored_seqs(since)), timeout=120, interval=2.0
    )
    stored = pipeline.stored_seqs(since)
    per_point: dict[tuple[str, int], int] = {}
    for point in stored:
        per_point[point] = per_point.get(point, 0) + 1
    assert set(per_point) == published  # nothing missing, nothing invented
    assert all(count == 1 for count in per_point.values())  # and each exactly once
    # The killed worker's devices resumed: every twin is known and saw this run's readings
    # (worker 1 gathers the twins of worker 0, which may still be recovering its tables).
    ids = sorted(d.device_id for d in plan.devices)
    assert wait_until(lambda: pipeline.caught_up(fleet), timeout=180, interval=2.0), (
        pipeline.diagnostics()
    )
    status, twins = pipeline.http("GET", f"{pipeline.api(1)}/twins")
    assert status == 200 and sorted(t["device_id"] for t in twins) == ids
    # And the group settled after the restart: both workers serve the same twins again.
    assert wait_until(pipeline.settled, timeout=120, interval=2.0), pipeline.diagnostics()
