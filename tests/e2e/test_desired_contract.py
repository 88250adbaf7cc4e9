"""Desired state as a contract, end to end on the real services: simulated devices on Mosquitto,
the bridge, Kafka, two ``twin-stream worker`` processes (the twin API, with tokens), the sink
and InfluxDB.

Refusals (422 naming the field and its range, 412 on a stale If-Match, and two PUTs with the
same If-Match of which only one gets through), two changes made while a device is offline that
both reach it, a change the device rejects shown with its reason, a change that expires and
leaves the retained desired message, every command's status stored by the sink, and every
refusal and invalid ack on the dead-letter topic with its reason."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from tests.conftest import MqttBroker, close, connect, describe_sink, http, rows, wait_until
from tests.e2e.conftest import RunningPipeline, StartPipeline
from twin_stream.auth import TokenStore
from twin_stream.domain.topics import mqtt_topic
from twin_stream.kafka import make_reader, read_to_end

pytestmark = pytest.mark.services

PUMP, VENT, MONITOR, DIALYSIS = "pump-0001", "vent-0002", "mon-0003", "dial-0004"
DEVICES = (PUMP, VENT, MONITOR, DIALYSIS)


def plan(*device_ids: str) -> FleetPlan:
    """Fresh simulated devices (nothing applied yet) of the test fleet."""
    fleet = FleetPlan.generate(len(DEVICES), hours=1, fault_fraction=0.0, seed=71)
    return FleetPlan([d for d in fleet.devices if d.device_id in device_ids], hours=1, seed=71)


@dataclass
class Platform(RunningPipeline):
    """The running pipeline, its workers' tokens in ``TWIN_API__TOKENS`` (viewer, operator)."""

    def get(self, device_id: str, worker: int = 0) -> tuple[int, Any, dict[str, str]]:
        return http("GET", self.workers.url(worker, f"/twins/{device_id}"), self.tokens["viewer"])

    def put(
        self, device_id: str, body: object, worker: int = 0, query: str = "", **headers: str
    ) -> tuple[int, Any, dict[str, str]]:
        url = self.workers.url(worker, f"/twins/{device_id}/desired{query}")
        return http("PUT", url, self.tokens["operator"], body, headers)

    def twin(self, device_id: str) -> dict[str, Any]:
        status, twin, _ = self.get(device_id)
        assert status == 200, twin
        return dict(twin)

    def settled(self) -> bool:
        """Both workers ready, each device owned by exactly one of them (not necessarily both
        some: four devices on six partitions may all fall to one worker's share, and a request
        to the other is forwarded, what the tests want to see), and either one answering for
        every device, with its type."""
        return self.workers.settled(DEVICES) and all(
            (self.get(d, i)[1] or {}).get("device_type") is not None
            for i in sorted(self.workers.ports)
            for d in DEVICES
        )

    def fleet(self, *device_ids: str) -> MqttFleet:
        return self.mqtt_fleet(plan(*device_ids), rate_hz=2.0)

    def dead_letters(self, device_id: str, ending: str, timeout: float = 30.0) -> list[Any]:
        """The letters of ``device_id`` whose reason ends with ``ending``, once there is one."""
        found: list[Any] = []
        with KafkaConsumer(
            self.topics["dlq"],
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
        ) as consumer:
            deadline = time.monotonic() + timeout
            while not found and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    letters = [orjson.loads(r.value) for r in records]
                    found += [
                        x
                        for x in letters
                        if x["device_id"] == device_id and x["reason"].endswith(ending)
                    ]
        return found

    def stored_statuses(self, command_id: str) -> list[dict[str, Any]]:
        """The sink's ``command_status`` points of one command, oldest first."""
        query = f'SELECT * FROM "command_status" WHERE "command" = \'{command_id}\''
        return rows(self.influx_url, "twin", query)

    def wait_stored(self, device_id: str, command_id: str, status: str) -> list[dict[str, Any]]:
        """The command's stored statuses once one is ``status``; if none comes, a failure that
        says where it stopped: the sink's state and the command in the device's last twin view
        on Kafka (not published, or published and not written)."""
        if wait_until(
            lambda: status in {p["status"] for p in self.stored_statuses(command_id)},
            timeout=60,
            interval=1.0,
        ):
            return self.stored_statuses(command_id)
        sink = describe_sink(self.sink) if self.sink is not None else "no sink"
        raise AssertionError(
            f"no stored {status!r} status of {command_id} "
            f"(stored: {self.stored_statuses(command_id)}); {sink}; "
            f"in the last view on Kafka: {self.published_command(device_id, command_id)}"
        )

    def published_command(self, device_id: str, command_id: str) -> object:
        """The command's record in the device's last twin view on the twins topic."""
        last: dict[str, Any] | None = None
        with closing(make_reader(self.bootstrap, {})) as reader:
            topic = self.topics["twins"]
            partitions = sorted(reader.partitions_for_topic(topic) or ())
            for _, record in read_to_end(reader, topic, partitions):
                if record.key == device_id.encode():
                    last = orjson.loads(record.value)
        if last is None:
            return "no view of the device"
        return last.get("commands", {}).get(command_id, f"not in view version {last['version']}")

    def retained_desired(self, device_id: str) -> dict[str, Any]:
        """The retained desired-state message of a device, as the device gets it."""
        client, got = connect(self.broker.port, device_id, self.broker.account(device_id).password)
        try:
            client.subscribe(mqtt_topic(device_id, "desired"), qos=1)
            assert wait_until(lambda: len(got.messages) >= 1, timeout=20)
        finally:
            close(client)
        body: dict[str, Any] = orjson.loads(got.messages[0].payload)
        return body


def clear_retained(broker: MqttBroker) -> None:
    cleaner, _ = connect(broker.port, broker.bridge.username, broker.bridge.password)
    try:
        for device_id in DEVICES:
            cleaner.publish(
                mqtt_topic(device_id, "desired"), b"", qos=1, retain=True
            ).wait_for_publish(5)
    finally:
        close(cleaner)


@pytest.fixture(scope="module")
def platform(start_pipeline: StartPipeline, mosquitto: MqttBroker) -> Iterator[Platform]:
    store, tokens = TokenStore(), {}
    for role in ("viewer", "operator"):
        store, tokens[role] = store.add(role, role, now=datetime.now(UTC))
    clear_retained(mosquitto)  # other tests' desired state is not this run's
    try:
        with start_pipeline(
            Platform,
            "dsc",
            tokens=tokens,
            worker_env={"TWIN_API__TOKENS": store.to_json()},
            reader=tokens["viewer"],
            sink_batch=500,
        ) as p:
            # The devices come online once, so that their twins know their types (and ranges).
            fleet = p.fleet(*DEVICES)
            runner = threading.Thread(target=fleet.run, args=(8.0,))
            runner.start()
            try:
                assert wait_until(p.settled, timeout=180, interval=2.0), p.workers.logs()
            finally:
                runner.join()
            yield p
    finally:
        clear_retained(mosquitto)


def test_a_setting_out_of_its_types_range_is_422_naming_the_field_and_its_range(
    platform: Platform,
) -> None:
    for worker in (0, 1):  # the owner answers, or the other worker forwards to it
        status, body, _ = platform.put(PUMP, {"rate": 1500}, worker)
        assert status == 422, body
        (detail,) = body["details"]
        assert detail | {"error": None} == {
            "field": "rate",
            "min": 0.1,
            "max": 999,
            "unit": "mL/h",
            "got": 1500,
            "error": None,
        }
        assert "infusion_pump" in detail["error"]
    status, body, _ = platform.put(MONITOR, {"rate": 20.0, "sample_interval_s": 0.001})
    assert status == 422
    assert [(d["field"], d["min"]) for d in body["details"]] == [
        ("rate", None),  # a patient monitor has no rate
        ("sample_interval_s", 0.01),
    ]
    assert "has no rate" in body["details"][0]["error"]
    (letter, *_) = platform.dead_letters(PUMP, "[out_of_range]")
    assert letter["mqtt_topic"] == platform.topics["commands"]
    assert "0.1 to 999 mL/h" in letter["reason"]
    assert platform.twin(PUMP)["quality"]["invalid"] == 0  # not the device's fault


def test_a_stale_if_match_is_412_and_of_two_puts_with_the_same_one_only_one_succeeds(
    platform: Platform,
) -> None:
    # The device is live: its reports and connectivity move the twin's version too, so a PUT
    # may meet a newer version than the GET saw (a correct 412). Read and try again then.
    for _ in range(5):
        status, twin, headers = platform.get(DIALYSIS, worker=1)
        assert status == 200 and headers["ETag"] == f'"{twin["version"]}"'
        etag = headers["ETag"]
        status, command, headers = platform.put(DIALYSIS, {"rate": 300.0}, 1, **{"If-Match": etag})
        if status != 412:
            break
        assert command["version"] > twin["version"]  # it did move: the 412 was right
    assert status == 202, command
    assert headers["ETag"] == f'"{command["twin_version"]}"'
    assert command["twin_version"] > twin["version"]
    for stale in (etag, etag.strip('"')):  # as an ETag, or the bare version
        status, body, headers = platform.put(DIALYSIS, {"rate": 250.0}, 0, **{"If-Match": stale})
        assert status == 412, body
        assert body["version"] == platform.twin(DIALYSIS)["version"] >= command["twin_version"]
        assert headers["ETag"] == f'"{body["version"]}"'
    assert platform.twin(DIALYSIS)["desired"]["rate"] == 300.0
    assert platform.dead_letters(DIALYSIS, "[precondition_failed]")

    # Two PUTs at once, through each worker, with the same (current) If-Match; both 412 means
    # the live device moved the version first: try again.
    answers: dict[int, tuple[int, Any, dict[str, str]]] = {}
    for _ in range(5):
        current = platform.get(DIALYSIS)[2]["ETag"]
        start = threading.Barrier(2)
        answers.clear()

        def put(worker: int, rate: float, start: threading.Barrier, current: str) -> None:
            start.wait()
            answers[worker] = platform.put(
                DIALYSIS, {"rate": rate}, worker, **{"If-Match": current}
            )

        racers = [
            threading.Thread(target=put, args=(w, r, start, current))
            for w, r in ((0, 200.0), (1, 220.0))
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        if any(status != 412 for status, _, _ in answers.values()):
            break
    assert sorted(status for status, _, _ in answers.values()) == [202, 412], answers
    (winner,) = [body for status, body, _ in answers.values() if status == 202]
    assert platform.twin(DIALYSIS)["desired"]["rate"] == winner["desired"]["rate"]


def test_two_changes_made_while_a_device_is_offline_both_reach_it(platform: Platform) -> None:
    # The ventilator is away: not connected since the fleet of the fixture stopped.
    status, first, _ = platform.put(VENT, {"rate": 16.0}, 0)
    assert status == 202, first
    status, second, _ = platform.put(VENT, {"sample_interval_s": 2.0}, 1)
    assert status == 202, second
    # The device's one retained message holds both changes.
    assert second["desired"] == {"rate": 16.0, "sample_interval_s": 2.0}
    assert wait_until(
        lambda: platform.retained_desired(VENT)["command_id"] == second["command_id"], timeout=20
    )
    # The ventilator comes back, and stays until it is in sync (not for a fixed time).
    fleet = platform.fleet(VENT)
    runner = threading.Thread(target=fleet.run, args=(600.0,))
    runner.start()

    def in_sync() -> bool:
        twin = platform.twin(VENT)
        return bool(
            twin["reported"].get("rate") == 16.0
            and twin["reported"].get("sample_interval_s") == 2.0
            and twin["delta"] == {}
        )

    try:
        assert wait_until(in_sync, timeout=60, interval=1.0), platform.twin(VENT)
    finally:
        fleet.stop()
        runner.join()
    commands = platform.twin(VENT)["commands"]
    assert commands[first["command_id"]]["status"] == "applied"
    assert commands[second["command_id"]]["status"] == "applied"
    platform.wait_stored(VENT, first["command_id"], "applied")


def test_a_command_the_device_rejects_is_shown_with_its_reason(platform: Platform) -> None:
    fleet = platform.fleet(PUMP)  # online until the checks below are done (stopped then)
    runner = threading.Thread(target=fleet.run, args=(600.0,))
    runner.start()
    try:
        assert wait_until(lambda: platform.twin(PUMP)["connectivity"] == "online", timeout=20)
        # 800 mL/h is in an infusion pump's range, beyond what this pump's make can run at.
        status, command, _ = platform.put(PUMP, {"rate": 800.0}, 1)
        assert status == 202, command
        command_id = command["command_id"]

        def rejected() -> dict[str, Any] | None:
            record = platform.twin(PUMP)["commands"].get(command_id)
            return record if record and record["status"] == "rejected" else None

        assert wait_until(rejected, timeout=20, interval=0.5), platform.twin(PUMP)
        record = rejected()
        assert record is not None and "500" in record["reason"] and "make" in record["reason"]
        twin = platform.twin(PUMP)
        assert twin["desired"].get("rate") != 800.0 and "rate" not in twin["delta"]
        # An ack of a command the platform never sent is dead-lettered too.
        device, _ = connect(platform.broker.port, PUMP, platform.broker.account(PUMP).password)
        try:
            bogus = {
                "v": 1,
                "device_id": PUMP,
                "command_id": "cmd-neversent",
                "status": "applied",
                "ts": datetime.now(UTC).isoformat(),
            }
            device.publish(mqtt_topic(PUMP, "ack"), json.dumps(bogus), qos=1).wait_for_publish(5)
        finally:
            close(device)
    finally:
        fleet.stop()
        runner.join()
    stored = platform.wait_stored(PUMP, command_id, "rejected")
    point = next(p for p in stored if p["status"] == "rejected")
    assert point["reason"] == record["reason"] and point["device_id"] == PUMP
    (letter, *_) = platform.dead_letters(PUMP, "[unknown_command]")
    assert letter["mqtt_topic"] == mqtt_topic(PUMP, "ack")


def test_an_expired_command_is_cleared_from_the_retained_message(platform: Platform) -> None:
    # The pump is away: not connected since the last test's fleet stopped.
    status, command, _ = platform.put(PUMP, {"sample_interval_s": 3.0}, 0, query="?ttl_s=2")
    assert status == 202, command
    assert command["desired"]["sample_interval_s"] == 3.0
    command_id = command["command_id"]
    # The device is away: the worker's timer (every 10 s) expires the change and withdraws it.

    def expired() -> bool:
        record = platform.twin(PUMP)["commands"][command_id]
        return bool(record["status"] == "expired")

    assert wait_until(expired, timeout=40, interval=1.0), platform.twin(PUMP)
    twin = platform.twin(PUMP)
    assert "not applied before" in twin["commands"][command_id]["reason"]
    assert "sample_interval_s" not in twin["desired"]
    assert "sample_interval_s" not in twin["delta"]
    withdraw = [(c, r) for c, r in twin["commands"].items() if command_id in r["withdraws"]]
    assert len(withdraw) == 1
    withdraw_id, record = withdraw[0]

    def retained_is_the_withdrawal() -> bool:
        return bool(platform.retained_desired(PUMP)["command_id"] == withdraw_id)

    assert wait_until(retained_is_the_withdrawal, timeout=20, interval=1.0)
    retained = platform.retained_desired(PUMP)
    assert "sample_interval_s" not in retained["desired"]
    assert retained["twin_version"] == record["version"] > command["twin_version"]
    platform.wait_stored(PUMP, command_id, "expired")
