"""Every dashboard and alert query on the real InfluxQL engine (the stack's InfluxDB 1.13).

The data is what the sink writes for a short simulated run: six devices for five hours, one
infusion pump whose motor wears out, run through the worker's own domain code
(``DeviceState``) and the sink's own ``to_points``. One ventilator also sends a burst of bad
payloads (dead letters), one patient monitor goes offline at the end, and the pump has a
desired setting it has not applied yet, after one it rejected (with its reason).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from simulators.fast_forward import readings
from simulators.faults import Fault
from simulators.fleet import FleetPlan
from tests.conftest import influxql
from tests.grafana_rules import evaluate
from twin_stream.bridge.routing import route
from twin_stream.domain.events import Command
from twin_stream.domain.messages import DesiredSettings
from twin_stream.domain.topics import mqtt_topic
from twin_stream.grafana import queries as q
from twin_stream.grafana.alert_rules import rule_group, rule_queries
from twin_stream.grafana.dashboards import all_dashboards
from twin_stream.sink.points import to_points
from twin_stream.worker.processing import DeviceState, twin_view

pytestmark = pytest.mark.services

FAULTY = "pump-0001"
REJECTED, PENDING = "cmd-rejected-01", "cmd-pending-01"  # the pump's commands
REJECTION = "rate: 800 mL/h is beyond this infusion_pump's make (0.1 to 500 mL/h) [out_of_range]"
NOISY = "vent-0002"  # sends the bad payloads
GONE = "mon-0003"  # goes offline at the end
HOURS = 5.0


def _records(now: datetime) -> Iterator[tuple[str, bytes]]:
    """(topic kind, record) as the bridge and the workers would put them on Kafka."""
    plan = FleetPlan.generate(6, hours=HOURS, fault_fraction=0.0, seed=61, start_hour=12.0)
    pump = next(d for d in plan.devices if d.device_id == FAULTY)
    pump.model.rate = 100.0
    pump.faults.append(
        Fault("motor_wear", "degradation", "motor_current", onset_s=1800, duration_s=4.5 * 3600)
    )
    start = now - timedelta(hours=HOURS)
    states = {d.device_id: DeviceState.new(d.device_id) for d in plan.devices}

    def twin(state: DeviceState, at: datetime) -> tuple[str, bytes]:
        return "twins", orjson.dumps(twin_view(state.twin, state.open_alerts(), at))

    for device in plan.devices:
        state = states[device.device_id]
        report = {
            "device_id": device.device_id,
            "ts": start.isoformat(),
            "seq": 0,
            "settings": {"rate": device.model.rate, "sample_interval_s": 10.0},
        }
        state.on_reported(orjson.dumps(report), now=start)
    rejected_at = now - timedelta(hours=2)
    rejected = Command.create(
        FAULTY,
        "set_desired",
        desired=DesiredSettings(rate=800.0),
        now=rejected_at,
        command_id=REJECTED,
    )
    rejected_sent = False
    desired_at = now - timedelta(hours=1)
    desired = Command.create(
        FAULTY,
        "set_desired",
        desired=DesiredSettings(rate=80.0),
        now=desired_at,
        command_id=PENDING,
    )
    desired_applied = False
    for reading in readings(plan, interval_s=10.0, start=start):
        raw = reading.model_dump_json(exclude_none=True).encode()
        yield "telemetry", raw
        state = states[reading.device_id]
        if reading.device_id == FAULTY and not rejected_sent and reading.ts >= rejected_at:
            state.on_command(rejected.model_dump_json().encode(), now=reading.ts)
            yield twin(state, reading.ts)
            at = reading.ts + timedelta(seconds=1)
            ack = {
                "device_id": FAULTY,
                "command_id": REJECTED,
                "status": "rejected",
                "reason": REJECTION,
                "ts": at.isoformat(),
            }
            state.on_ack(orjson.dumps(ack), now=at)  # the pump cannot run that fast
            rejected_sent = True
            yield twin(state, at)
        if reading.device_id == FAULTY and not desired_applied and reading.ts >= desired_at:
            state.on_command(desired.model_dump_json().encode(), now=reading.ts)
            desired_applied = True
            yield twin(state, reading.ts)
        out = state.on_telemetry(raw, now=reading.ts)
        for score in out.scores:
            yield "scores", score.to_json()
        for prediction in out.predictions:
            yield "predictions", prediction.to_json()
        for alert in out.alerts:
            yield "alerts", alert.model_dump_json().encode()
        if out.alerts or reading.seq % 30 == 0:
            yield twin(state, reading.ts)
    for i in range(30):  # a burst of bad payloads from one device in the last two minutes
        at = now - timedelta(seconds=120 - 3 * i)
        letter = route(mqtt_topic(NOISY, "telemetry"), b'{"v": 1, "seq": -1}', now=at)
        yield "dlq", letter.value
        states[NOISY].on_dead_letter()  # the worker counts it in the twin and publishes it
        yield twin(states[NOISY], at)
    offline = {
        "device_id": GONE,
        "ts": (now - timedelta(minutes=1)).isoformat(),
        "state": "offline",
        "reason": "will",
        "fw": "1.0.0",
    }
    states[GONE].on_status(orjson.dumps(offline), now=now - timedelta(minutes=1))
    yield twin(states[GONE], now - timedelta(minutes=1))


def _write(base_url: str, db: str, lines: list[str], precision: str) -> None:
    for i in range(0, len(lines), 5000):
        request = urllib.request.Request(
            f"{base_url}/write?db={db}&precision={precision}",
            data="\n".join(lines[i : i + 5000]).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 204


@pytest.fixture(scope="module")
def db(influxdb_url: str) -> str:
    """A database holding the run, written as the sink's line protocol."""
    name = f"grafana_{int(datetime.now(UTC).timestamp())}"
    influxql(influxdb_url, f'CREATE DATABASE "{name}"')
    by_precision: dict[str, list[str]] = {"ms": [], "u": []}
    kinds: set[str] = set()
    for kind, record in _records(datetime.now(UTC)):
        kinds.add(kind)
        for point in to_points(kind, record):
            precision = "u" if point.write_precision == "us" else "ms"
            by_precision[precision].append(point.to_line_protocol())
    assert kinds == {"telemetry", "scores", "predictions", "alerts", "twins", "dlq"}
    for precision, lines in by_precision.items():
        _write(influxdb_url, name, lines, precision)
    return name


def run(base_url: str, db: str, query: q.Query) -> list[dict[str, Any]]:
    text = q.render(query.influxql, since=f"{int(HOURS) + 1}h", interval="5m", device_id=FAULTY)
    result = influxql(base_url, text, db)["results"][0]
    assert "error" not in result, (query.name, text, result["error"])
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def panel_queries() -> list[q.Query]:
    """Every query a dashboard sends: panel targets, variables and annotations."""
    by_text = {query.influxql: query for query in q.ALL_QUERIES}
    texts = []
    for dashboard in all_dashboards():
        body = dashboard.to_grafana()
        texts += [t["query"] for p in body["panels"] for t in p["targets"]]
        texts += [v["query"] for v in body["templating"]["list"]]
        texts += [a["target"]["query"] for a in body["annotations"]["list"]]
    unknown = [t for t in texts if t not in by_text]
    assert not unknown, f"dashboard queries not in queries.ALL_QUERIES (so unchecked): {unknown}"
    return list({by_text[t].name: by_text[t] for t in texts}.values())


@pytest.mark.parametrize("query", panel_queries(), ids=lambda query: query.name)
def test_every_panel_query_returns_rows_with_the_columns_its_panel_expects(
    influxdb_url: str, db: str, query: q.Query
) -> None:
    series = run(influxdb_url, db, query)
    assert series, f"{query.name} returned no series"
    for s in series:
        assert not query.expects(s["columns"]), (query.name, s["columns"])
        assert set(query.tags) <= set(s.get("tags") or {}), (query.name, s.get("tags"))
    values = [v for s in series for row in s["values"] for v in row[1:]]
    assert any(v is not None for v in values), f"{query.name}: only empty rows"


def test_the_fleet_panels_see_the_offline_monitor_the_failing_pump_and_the_dead_letters(
    influxdb_url: str, db: str
) -> None:
    online = {
        s["tags"]["device_type"]: dict(zip(s["columns"], s["values"][0], strict=True))
        for s in run(influxdb_url, db, q.ONLINE_BY_TYPE)
    }
    assert online["patient_monitor"]["offline"] == 1
    predicted = {s["tags"]["device_id"] for s in run(influxdb_url, db, q.PREDICTED_FAILURES)}
    assert FAULTY in predicted
    letters = run(influxdb_url, db, q.DEAD_LETTER_RATE)
    assert sum(row[1] for s in letters for row in s["values"]) == 30


@pytest.mark.parametrize("rule", rule_group().rules, ids=lambda rule: rule.uid)
def test_every_alert_query_runs_and_fires_for_the_device_it_should(
    influxdb_url: str, db: str, rule: Any
) -> None:
    for ref, query in rule_queries(rule).items():
        series = run(influxdb_url, db, query)
        assert series, f"{rule.uid} {ref}: no series"
        for s in series:
            assert not query.expects(s["columns"]), (rule.uid, ref, s["columns"])
            assert set(query.tags) <= set(s.get("tags") or {}), (rule.uid, ref, s.get("tags"))
    instances = evaluate(rule, lambda query: run(influxdb_url, db, query))
    firing_devices = {labels.get("device_id") for labels, on in instances if on}
    expected = {
        # The worker paged for the failing pump only (the monitor's offline alert and the
        # dead letters are not alerts the worker sent in this run).
        "twin-worker-alerts": {FAULTY},
        "twin-dead-letters": {NOISY},
        "twin-pipeline-silent": set(),  # scores keep arriving
    }
    assert firing_devices == expected[rule.uid], instances


def test_the_worker_alert_rule_pages_once_per_alert_with_its_severity_and_explanation(
    influxdb_url: str, db: str
) -> None:
    (rule,) = [r for r in rule_group().rules if r.uid == "twin-worker-alerts"]
    firing = [labels for labels, on in evaluate(rule, lambda qq: run(influxdb_url, db, qq)) if on]
    alerts = [labels["alert"] for labels in firing]
    assert alerts and len(alerts) == len(set(alerts))  # its latest page only, per alert
    for labels in firing:
        assert labels["device_id"] == FAULTY and labels["severity"] in ("warning", "critical")
        assert "motor_current" in labels["summary"]
        assert labels["event"] in ("open", "updated") and int(labels["page"]) >= 0


def test_the_pipeline_rule_fires_when_no_data_arrives(influxdb_url: str, unique: str) -> None:
    (rule,) = [r for r in rule_group().rules if r.uid == "twin-pipeline-silent"]
    empty = unique.replace("-", "_")
    influxql(influxdb_url, f'CREATE DATABASE "{empty}"')
    assert evaluate(rule, lambda query: run(influxdb_url, empty, query)) == [({}, True)]


def test_the_device_commands_panel_shows_each_commands_status_and_the_devices_reason(
    influxdb_url: str, db: str
) -> None:
    rows = {
        s["tags"]["command"]: dict(zip(s["columns"], s["values"][0], strict=True))
        for s in run(influxdb_url, db, q.DEVICE_COMMANDS)
    }
    assert (rows[REJECTED]["status"], rows[REJECTED]["reason"]) == ("rejected", REJECTION)
    assert orjson.loads(rows[REJECTED]["changes"]) == {"rate": 800.0}
    assert rows[PENDING]["status"] == "pending" and rows[PENDING]["reason"] is None
    assert rows[PENDING]["twin_version"] > rows[REJECTED]["twin_version"]
    # The rejected change was withdrawn by a command of its own, also shown.
    (withdraw,) = [r for c, r in rows.items() if c not in (REJECTED, PENDING)]
    assert withdraw["kind"] == "withdraw"
