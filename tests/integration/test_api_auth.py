"""The twin API's guard and audit trail on the real services: two ``twin-stream worker``
processes on Kafka sharing the devices, their tokens in a tokens file, the sink writing to
InfluxDB.

401 without a token or with an unknown or revoked one, 403 for a role too low, Faust's own views
refused; an operator's change accepted by either worker (forwarded to the device's owner with
the caller's credentials), recorded on ``twin.audit``, readable through ``GET /audit`` and
stored by the sink."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from typer.testing import CliRunner

from simulators.fast_forward import readings
from simulators.fleet import FleetPlan
from tests.conftest import Workers, http, make_tokens, rows, running_sink, wait_until
from twin_stream.cli import app as cli
from twin_stream.domain.records import AuditRecord
from twin_stream.domain.topics import kafka_topics
from twin_stream.kafka import ensure_topics
from twin_stream.worker.audit_views import read_audit

pytestmark = pytest.mark.services

DEVICES = 8


@dataclass
class Api:
    """Two workers on the session's Kafka sharing the devices, their tokens in a tokens file
    (admin, operator, viewer), the sink writing to the session's InfluxDB."""

    tokens_file: Path
    tokens: dict[str, str]
    devices: list[str]
    influx_url: str
    workers: Workers

    @property
    def bootstrap(self) -> str:
        return self.workers.bootstrap

    @property
    def prefix(self) -> str:
        return self.workers.prefix

    def url(self, worker: int, path: str) -> str:
        return self.workers.url(worker, path)

    def owner(self, device_id: str) -> int:
        return self.workers.owner(device_id)


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, influxdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api-auth")
    tokens_file = root / "api-tokens.json"
    tokens = make_tokens(tokens_file, {"admin": "admin", "op": "operator", "viewer": "viewer"})
    prefix = f"auth{int(time.time())}"
    topics = kafka_topics(prefix)
    ensure_topics(kafka_bootstrap, 6, {}, topics)
    plan = FleetPlan.generate(DEVICES, hours=0.05, fault_fraction=0.0, seed=61)
    env = {"TWIN_API__TOKENS_FILE": str(tokens_file), "TWIN_API__TOKENS": ""}
    workers = Workers(root, kafka_bootstrap, prefix, env=env, token=tokens["viewer"])
    devices = sorted(d.device_id for d in plan.devices)
    with running_sink(kafka_bootstrap, influxdb_url, prefix, batch_size=500):
        try:
            with KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all") as producer:
                start = datetime.now(UTC) - timedelta(minutes=3)
                for reading in readings(plan, interval_s=30, start=start):
                    producer.send(
                        topics["telemetry"],
                        key=reading.device_id.encode(),
                        value=reading.model_dump_json(exclude_none=True).encode(),
                    )
                producer.flush(30)
            workers.start(0)
            workers.start(1)
            settled = partial(workers.settled, devices)
            assert wait_until(settled, timeout=180, interval=2.0), workers.logs()
            yield Api(tokens_file, tokens, devices, influxdb_url, workers)
        finally:
            workers.stop()


def test_no_token_an_unknown_one_or_a_revoked_one_is_401(api: Api) -> None:
    status, body, headers = http("GET", api.url(0, "/twins"))
    assert status == 401 and body["required_role"] == "viewer"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    unknown = "tsk_0badc0de_" + "A" * 43
    status, body, headers = http("PUT", api.url(1, "/twins/pump-0001/desired"), unknown, {})
    assert (status, body["error"]) == (401, "unknown or revoked token")
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    # A token made and revoked with the CLI while the workers run.
    runner = CliRunner()
    env = {"TWIN_API__TOKENS_FILE": str(api.tokens_file), "TWIN_API__TOKENS": ""}
    made = runner.invoke(cli, ["tokens", "add", "temp", "--role", "viewer"], env=env)
    assert made.exit_code == 0, made.output
    temp = made.stdout.strip()
    for worker in (0, 1):
        assert http("GET", api.url(worker, "/twins/pump-0001"), temp)[0] == 200
    assert runner.invoke(cli, ["tokens", "revoke", "temp"], env=env).exit_code == 0
    for worker in (0, 1):
        status, body, _ = http("GET", api.url(worker, "/twins/pump-0001"), temp)
        assert (status, body["error"]) == (401, "unknown or revoked token")


def test_a_viewer_reads_everything_but_may_change_nothing(api: Api) -> None:
    viewer = api.tokens["viewer"]
    for worker in (0, 1):
        # /twins gathers the other worker's twins with the viewer's own token.
        status, twins, _ = http("GET", api.url(worker, "/twins"), viewer)
        assert status == 200 and sorted(t["device_id"] for t in twins) == api.devices
        for device_id in api.devices:  # either worker answers for any device (Faust routes)
            status, twin, _ = http("GET", api.url(worker, f"/twins/{device_id}"), viewer)
            assert status == 200 and twin["device_id"] == device_id
        assert http("GET", api.url(worker, "/alerts?state=open"), viewer)[0] == 200
    change = {"sample_interval_s": 5.0}
    status, body, _ = http("PUT", api.url(0, "/twins/pump-0001/desired"), viewer, change)
    assert status == 403
    assert body["required_role"] == "operator" and "'viewer'" in body["error"]


@pytest.mark.parametrize("path", ["/router", "/table", "/table/twins", "/", "/stats", "/graph"])
def test_fausts_own_views_are_refused(api: Api, path: str) -> None:
    for role in ("viewer", "operator"):
        status, body, _ = http("GET", api.url(0, path), api.tokens[role])
        assert (status, body["required_role"]) == (403, "admin")
    status, body, _ = http("GET", api.url(1, path), api.tokens["admin"])
    assert status == (200 if path == "/" else 404), body  # off; "/" is Faust's bare index
    assert path != "/router" or "twins" not in str(body)


def test_an_operators_change_is_accepted_on_either_worker_and_audited(api: Api) -> None:
    since = datetime.now(UTC)
    operator = api.tokens["operator"]
    commands: dict[str, dict[str, Any]] = {}
    forwarded = 0
    for n, device_id in enumerate(api.devices):
        asked = n % 2
        forwarded += api.owner(device_id) != asked
        interval = 2.0 + n  # seconds between readings: a setting of every device type
        url = api.url(asked, f"/twins/{device_id}/desired")
        status, command, _ = http("PUT", url, operator, {"sample_interval_s": interval})
        assert status == 202, (device_id, command)
        assert command["desired"]["sample_interval_s"] == interval
        commands[device_id] = command
    assert forwarded > 0  # some went through the other worker, the caller's token with them

    def trail(worker: int, query: str) -> list[dict[str, Any]]:
        status, records, _ = http("GET", api.url(worker, f"/audit?{query}"), api.tokens["viewer"])
        assert status == 200, records
        return list(records)

    for n, device_id in enumerate(api.devices):
        query = urllib.parse.urlencode({"device": device_id, "since": since.isoformat()})
        assert wait_until(lambda q=query, w=n % 2: len(trail(w, q)) == 1, timeout=30)
        (record,) = trail(1 - n % 2, query)  # the other worker reads the same trail
        assert record["command_id"] == commands[device_id]["command_id"]
        assert (record["actor"], record["role"]) == ("op", "operator")
        assert (record["action"], record["device_id"]) == ("set_desired", device_id)
        assert record["new"]["sample_interval_s"] == 2.0 + n
        assert record["old"].get("sample_interval_s") != 2.0 + n
        assert datetime.fromisoformat(record["at"]) >= since
    # Without a device: every device's records, oldest first; a later `since`: none of them.
    everything = trail(0, urllib.parse.urlencode({"since": since.isoformat()}))
    assert {r["device_id"] for r in everything} == set(api.devices)
    assert [r["at"] for r in everything] == sorted(r["at"] for r in everything)
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert trail(1, urllib.parse.urlencode({"since": later})) == []
    status, body, _ = http("GET", api.url(0, "/audit?device=Not%20One"), api.tokens["viewer"])
    assert status == 422 and "device" in body["error"]
    assert http("GET", api.url(0, "/audit"))[0] == 401

    # The sink stores each record as a point of the audit measurement.
    def stored() -> dict[str, dict[str, Any]]:
        found = rows(
            api.influx_url,
            "twin",
            f'SELECT * FROM "audit" WHERE time >= {int(since.timestamp() * 1000)}ms',
        )
        return {r["command_id"]: r for r in found if r.get("command_id")}

    wanted = {c["command_id"] for c in commands.values()}
    assert wait_until(lambda: wanted <= set(stored()), timeout=60, interval=1.0)
    point = stored()[commands["pump-0001"]["command_id"]]
    assert (point["actor"], point["role"], point["action"]) == ("op", "operator", "set_desired")
    assert point["device_id"] == "pump-0001"
    desired = commands["pump-0001"]["desired"]
    assert json.loads(point["new"])["sample_interval_s"] == desired["sample_interval_s"]


def test_read_audit_keeps_the_asked_devices_records_from_since(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = kafka_topics(f"a{unique}")["audit"]
    ensure_topics(kafka_bootstrap, 3, {}, {"audit": topic})
    base = datetime.now(UTC) - timedelta(minutes=10)
    made = [
        AuditRecord(
            audit_id=f"audit{i:04d}",
            at=base + timedelta(minutes=i),
            actor="op",
            role="operator",
            action="set_desired",
            device_id=device_id,
            new={"rate": float(i)},
        )
        for i, device_id in enumerate(["pump-0001", "vent-0002", "pump-0001", "mon-0003"])
    ]
    with KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all") as producer:
        for record in made:
            producer.send(
                topic, key=record.device_id.encode(), value=record.model_dump_json().encode()
            )
        producer.flush(30)

    def read(**kwargs: Any) -> list[str]:
        return [r.audit_id for r in asyncio.run(read_audit(kafka_bootstrap, topic, **kwargs))]

    assert read() == ["audit0000", "audit0001", "audit0002", "audit0003"]
    assert read(device="pump-0001") == ["audit0000", "audit0002"]
    assert read(device="pump-0001", since=base + timedelta(minutes=1)) == ["audit0002"]
    assert read(device="dial-0004") == []
    assert read(since=datetime.now(UTC) + timedelta(minutes=1)) == []


def test_failures_add_is_refused_or_recorded_audited_and_reaches_the_owner(api: Api) -> None:
    """``twin-stream failures add`` against the real workers: an unknown device, a time in the
    future and a viewer's token are refused with the reason; a failure of a known device is
    accepted by either worker, audited, and reaches the device's owner on twin.lifecycle (these
    devices have too few readings for a healthy reference, so the owner dead-letters it with
    that reason: nothing is learned from a unit whose normal was never known)."""
    runner = CliRunner()
    since = datetime.now(UTC)

    def add(worker: int, role: str, device_id: str, at: str) -> Any:
        env = {"TWIN_API__URL": api.url(worker, ""), "TWIN_API__TOKEN": api.tokens[role]}
        return runner.invoke(
            cli,
            ["failures", "add", device_id, "--at", at, "--note", "motor seized", "--json"],
            env=env,
        )

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    unknown = add(0, "operator", "pump-0999", past)
    assert unknown.exit_code == 1 and "unknown device 'pump-0999'" in unknown.output
    ahead = add(1, "operator", "pump-0001", future)
    assert ahead.exit_code == 1 and "in the future" in ahead.output
    viewer = add(0, "viewer", "pump-0001", past)
    assert viewer.exit_code == 1 and "(403)" in viewer.output
    for worker in (0, 1):  # either worker takes it (forwarded to the owner)
        done = add(worker, "operator", "pump-0001", past)
        assert done.exit_code == 0, done.output
        event = json.loads(done.stdout)
        assert (event["kind"], event["device_id"], event["by"]) == ("failure", "pump-0001", "op")
    query = urllib.parse.urlencode({"device": "pump-0001", "since": since.isoformat()})

    def recorded() -> list[Any]:
        status, body, _ = http("GET", api.url(0, f"/audit?{query}"), api.tokens["viewer"])
        return [r for r in body if r["action"] == "failure_recorded"] if status == 200 else []

    assert wait_until(lambda: len(recorded()) == 2, timeout=30, interval=0.5)
    assert {r["actor"] for r in recorded()} == {"op"}
    letters: list[dict[str, Any]] = []
    with KafkaConsumer(
        kafka_topics(api.prefix)["dlq"],
        bootstrap_servers=api.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    ) as consumer:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(letters) < 2:
            letters += [
                json.loads(m.value)
                for m in consumer
                if b"no_reference" in m.value and m.key == b"pump-0001"
            ]
    assert len(letters) == 2, letters
    assert letters[0]["mqtt_topic"] == kafka_topics(api.prefix)["lifecycle"]
