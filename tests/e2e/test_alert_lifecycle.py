"""An alert's life with people in it, on the real services: a simulated pump's motor wears out
(simulator -> Mosquitto -> bridge -> Kafka -> two ``twin-stream worker`` processes -> Kafka ->
sink -> InfluxDB), the worker that owns the pump raises a critical alert, re-notifies it while
nobody acknowledges it, an operator shelves it and it comes back, then acknowledges it and it
goes quiet; every event is in ``GET /alerts`` and stored by the sink, and Grafana's rule over
the stored pages pages for it only until it is acknowledged. The operator acts through the
worker that does not own the pump: the action reaches the owner.

The workers run with a short re-notification interval (6 s) and a fast alert clock (1 s), so
that minutes of a ward's life fit in a test."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from simulators.device import FIRMWARE
from simulators.faults import Fault
from simulators.fleet import FleetPlan
from tests.conftest import close, connect, http, influxql, make_tokens, rows, wait_until
from tests.e2e.conftest import RunningPipeline, StartPipeline
from tests.grafana_rules import evaluate
from twin_stream.domain.topics import mqtt_topic
from twin_stream.grafana import queries as q
from twin_stream.grafana.alert_rules import rule_group

pytestmark = pytest.mark.services

RENOTIFY_MIN = 0.1  # 6 s
MAX_SHELVE_MIN = 60.0


@dataclass
class Ward(RunningPipeline):
    """The running pipeline, with a short re-notification interval and a fast alert clock, and
    a viewer's and an operator's token (in its workers' tokens file)."""

    def call(
        self, method: str, path: str, role: str = "viewer", body: Any = None, worker: int = 0
    ) -> tuple[int, Any]:
        url = self.workers.url(worker, path)
        status, answer, _ = http(method, url, self.tokens[role], body, timeout=20)
        return status, answer

    def alert(self, alert_id: str, worker: int = 0) -> dict[str, Any]:
        status, body = self.call("GET", f"/alerts/{alert_id}", worker=worker)
        assert status == 200, (status, body, self.tail())
        return dict(body)

    def owner(self, device_id: str) -> int:
        """The worker that owns the device, once exactly one does (a worker that missed its
        heartbeats on a loaded machine may be rejoining the group, its partitions moving)."""
        return self.workers.owner(device_id)

    def tail(self) -> str:
        return self.workers.logs(2000)


@pytest.fixture(scope="module")
def ward(start_pipeline: StartPipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ward]:
    tokens_file = tmp_path_factory.mktemp("ward-tokens") / "api-tokens.json"
    tokens = make_tokens(tokens_file, {"ward-viewer": "viewer", "ward-operator": "operator"})
    with start_pipeline(
        Ward,
        "ward",
        tokens=tokens,
        worker_env={
            "TWIN_API__TOKENS_FILE": str(tokens_file),
            "TWIN_API__TOKENS": "",
            "TWIN_WORKER__ALERT_RENOTIFY_MIN": str(RENOTIFY_MIN),
            "TWIN_WORKER__ALERT_CHECK_S": "1",
            "TWIN_WORKER__ALERT_MAX_SHELVE_MIN": str(MAX_SHELVE_MIN),
        },
        reader=tokens["viewer"],
        own_tsdb=True,  # its pages alone, for Grafana's rule to evaluate
    ) as w:
        yield w


def worn_pump() -> FleetPlan:
    """pump-0001, whose motor wears out, and a healthy ventilator."""
    plan = FleetPlan.generate(2, hours=5, fault_fraction=0.0, seed=71, start_hour=12.0)
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


def _critical(ward: Ward) -> dict[str, Any] | None:
    status, alerts = ward.call("GET", "/alerts?state=open&device=pump-0001")
    assert status == 200, alerts
    return next((a for a in alerts if a["severity"] == "critical" and a["kind"] != "offline"), None)


def _stored(ward: Ward, alert_id: str) -> list[dict[str, Any]]:
    return rows(
        ward.influx_url,
        "twin",
        f'SELECT "state", "revision", "pages", "ack_by", "shelved_by" FROM "alert" '
        f"WHERE \"alert\" = '{alert_id}'",
    )


def _pages(ward: Ward, alert_id: str) -> list[dict[str, str]]:
    """The instances of Grafana's worker-alert rule that fire for the alert now."""
    (rule,) = [r for r in rule_group().rules if r.uid == "twin-worker-alerts"]

    def run(query: q.Query) -> list[dict[str, Any]]:
        result = influxql(ward.influx_url, query.influxql, "twin")["results"][0]
        assert "error" not in result, result
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    return [labels for labels, on in evaluate(rule, run) if on and labels["alert"] == alert_id]


def test_a_real_alert_is_renotified_shelved_returns_and_is_acknowledged(ward: Ward) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    # 10 readings/s, physics 240x: a reading every 24 simulated seconds, 5 simulated hours in 75 s.
    fleet = ward.mqtt_fleet(worn_pump(), rate_hz=10.0, speed=240.0)
    runner = threading.Thread(target=fleet.run, args=(180.0,))
    runner.start()
    try:
        raised = wait_until(lambda: _critical(ward) is not None, timeout=180, interval=1.0)
    finally:
        fleet.stop()  # the alert stays open without its data; no update resets its clock
        runner.join()
    alert = _critical(ward)
    assert raised and alert is not None, ward.tail()
    alert_id = alert["alert_id"]
    assert alert["status"] == "open" and "motor_current" in alert["summary"]
    # The operator acts through the worker that does not own the pump; either worker shows it.
    other = 1 - ward.owner("pump-0001")
    assert ward.alert(alert_id, worker=other)["alert_id"] == alert_id
    assert ward.call("GET", f"/alerts/{alert_id}?scope=local", worker=other)[0] == 404  # not its

    # Nobody acknowledges it: it pages again every 6 s.
    assert wait_until(lambda: ward.alert(alert_id)["renotified"] >= 1, timeout=30, interval=0.5)
    renotified = ward.alert(alert_id)
    assert renotified["state"] == "renotified" and renotified["status"] == "open"

    # Refusals: a viewer may not act; no such alert; too long a shelf.
    assert ward.call("POST", f"/alerts/{alert_id}/ack", "viewer", {}, other)[0] == 403
    assert ward.call("POST", "/alerts/no-such-alert/ack", "operator", {}, other)[0] == 404
    status, body = ward.call(
        "POST", f"/alerts/{alert_id}/shelve", "operator", {"minutes": MAX_SHELVE_MIN + 1}, other
    )
    assert status == 422 and "60" in body["error"]

    # Shelved for 15 s: hidden, silent, then back, paging again.
    status, body = ward.call(
        "POST",
        f"/alerts/{alert_id}/shelve",
        "operator",
        {"minutes": 0.25, "note": "walking over"},
        other,
    )
    assert status == 202 and body["action"]["by"] == "ward-operator", body
    assert wait_until(lambda: ward.alert(alert_id)["status"] == "shelved", timeout=20, interval=0.5)
    shelved = ward.alert(alert_id)
    assert shelved["shelf"]["note"] == "walking over"
    status, open_now = ward.call("GET", "/alerts?state=open&device=pump-0001")
    assert alert_id not in {a["alert_id"] for a in open_now}
    status, hidden = ward.call("GET", "/alerts?state=shelved", worker=other)
    assert [a["alert_id"] for a in hidden] == [alert_id]
    assert wait_until(lambda: ward.alert(alert_id)["state"] == "unshelved", timeout=40, interval=1)
    back = ward.alert(alert_id)
    assert back["status"] == "open" and back["shelf"] is None
    assert back["renotified"] == shelved["renotified"]  # not re-notified while shelved

    # Grafana's rule pages for it now (its latest page: the return from the shelf, or a
    # re-notification after it)...
    assert wait_until(lambda: len(_pages(ward, alert_id)) == 1, timeout=30, interval=1.0)

    # Acknowledged: it stops paging, and nothing re-notifies it.
    status, body = ward.call(
        "POST", f"/alerts/{alert_id}/ack", "operator", {"note": "on it"}, other
    )
    assert status == 202, body
    assert wait_until(
        lambda: ward.alert(alert_id)["status"] == "acknowledged", timeout=20, interval=0.5
    )
    acked = ward.alert(alert_id)
    assert acked["ack"]["by"] == "ward-operator" and acked["ack"]["note"] == "on it"
    time.sleep(3 * RENOTIFY_MIN * 60)
    still = ward.alert(alert_id)
    assert (still["revision"], still["renotified"]) == (acked["revision"], acked["renotified"])
    assert ward.call("POST", f"/alerts/{alert_id}/ack", "operator", {}, other)[0] == 409
    status, listed = ward.call("GET", f"/alerts?state=acknowledged&since={since.isoformat()}")
    assert alert_id in {a["alert_id"] for a in listed}

    # ...and not any more.
    assert wait_until(lambda: _pages(ward, alert_id) == [], timeout=30, interval=1.0)

    # The sink stored the whole life; the audit trail has who did what.
    def stored_states() -> set[str]:
        return {r["state"] for r in _stored(ward, alert_id)}

    life = {"open", "renotified", "shelved", "unshelved", "acknowledged"}
    assert wait_until(lambda: life <= stored_states(), timeout=30, interval=1.0), stored_states()
    stored = {r["state"]: r for r in _stored(ward, alert_id)}
    assert stored["acknowledged"]["ack_by"] == "ward-operator"
    assert stored["acknowledged"]["pages"] == 0 and stored["renotified"]["pages"] == 1
    audit = rows(
        ward.influx_url,
        "twin",
        f'SELECT "actor", "action", "subject" FROM "audit" WHERE "subject" = \'{alert_id}\'',
    )
    assert sorted(r["action"] for r in audit) == ["alert_ack", "alert_shelve"]
    assert {r["actor"] for r in audit} == {"ward-operator"}


def test_a_resolved_alert_is_history_and_takes_no_action(ward: Ward) -> None:
    # The fleet stopped (above): its pump went offline. Its birth message resolves that alert.
    def offline() -> dict[str, Any] | None:
        status, alerts = ward.call("GET", "/alerts?device=pump-0001")
        assert status == 200
        return next((a for a in alerts if a["kind"] == "offline"), None)

    assert wait_until(lambda: offline() is not None, timeout=30, interval=1.0), ward.tail()
    gone = offline()
    assert gone is not None
    device, _ = connect(ward.broker.port, "pump-0001", ward.broker.account("pump-0001").password)
    birth = {
        "v": 1,
        "device_id": "pump-0001",
        "state": "online",
        "reason": "birth",
        "fw": FIRMWARE["infusion_pump"],
        "ts": datetime.now(UTC).isoformat(),
    }
    try:
        device.publish(
            mqtt_topic("pump-0001", "status"), orjson.dumps(birth), qos=1
        ).wait_for_publish(5)
    finally:
        close(device)

    def resolved() -> list[dict[str, Any]]:
        status, alerts = ward.call("GET", "/alerts?state=resolved&device=pump-0001")
        assert status == 200
        return [a for a in alerts if a["alert_id"] == gone["alert_id"]]

    assert wait_until(lambda: resolved() != [], timeout=30, interval=1.0), ward.tail()
    (done,) = resolved()
    assert done["status"] == "resolved" and done["state"] == "resolved"
    for verb, body in (("ack", {"note": "late"}), ("shelve", {"minutes": 5})):
        status, answer = ward.call(
            "POST",
            f"/alerts/{gone['alert_id']}/{verb}",
            "operator",
            body,
            1 - ward.owner("pump-0001"),
        )
        assert status == 409 and "is resolved" in answer["error"], (verb, answer)
    query = urllib.parse.urlencode({"state": "resolved", "since": "2999-01-01T00:00:00+00:00"})
    assert ward.call("GET", f"/alerts?{query}")[1] == []
