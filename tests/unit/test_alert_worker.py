"""The worker's part of the alert lifecycle without a broker (Faust's test context on
``memory://``, every produced record captured): the alert-actions agent, the alert clock, and
the twin API's alert routes served by aiohttp's test server behind the real token guard.

A real alert is raised the way the worker raises one: a reading (the device's monitor), then
the device's last will (an ``offline`` alert, a warning that pages)."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.conftest import Sent, put
from twin_stream.auth import TokenFile, TokenStore
from twin_stream.domain.alert_lifecycle import AlertAction
from twin_stream.domain.events import Alert, Prediction
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.domain.topics import kafka_topics
from twin_stream.worker.alert_actions import register_alert_agents
from twin_stream.worker.app import WorkerConfig, create_app
from twin_stream.worker.checkpoint import DeviceCache

KEY = b"pump-0001"
T = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
READING = (
    b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":1,'
    b'"ts":"2026-11-24T12:00:00Z","fw":"1.0.0","metrics":{"motor_current":0.3}}'
)


def status(state: str, reason: str) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "device_id": "pump-0001",
            "state": state,
            "reason": reason,
            "fw": "1.0.0",
            "ts": datetime.now(UTC).isoformat(),
        }
    )


def alerts_sent(sent: Sent) -> list[Alert]:
    return [Alert.model_validate_json(v) for name, _, v in sent if name == "twin.alerts"]


def of(sent: Sent, topic: str) -> list[tuple[bytes | None, bytes]]:
    return [(k, v) for name, k, v in sent if name == topic]


def action(alert: Alert, verb: str = "ack", **fields: Any) -> bytes:
    return (
        AlertAction(
            action_id=fields.pop("action_id", f"{verb}-{time.monotonic_ns()}"),
            alert_id=alert.alert_id,
            device_id=alert.device_id,
            action=verb,  # type: ignore[arg-type]
            by="alice",
            role="operator",
            at=fields.pop("at", None) or datetime.now(UTC),
            **fields,
        )
        .model_dump_json()
        .encode()
    )


async def raise_offline_alert(app: Any) -> None:
    await put(app.agents["twin-worker.telemetry"], (KEY, READING))
    await put(app.agents["twin-worker.status"], (KEY, status("offline", "will")))


def test_the_agent_applies_an_action_sends_the_next_event_and_checkpoints_it(
    app: Any, sent: Sent
) -> None:
    asyncio.run(raise_offline_alert(app))
    (opened,) = alerts_sent(sent)
    assert (opened.kind, opened.state, opened.severity, opened.pages) == (
        "offline",
        "open",
        "warning",
        True,
    )
    agent = app.agents["twin-worker.alert_actions"]
    ack = action(opened, note="on my way")
    asyncio.run(put(agent, (KEY, ack)))
    acked = alerts_sent(sent)[-1]
    assert (acked.alert_id, acked.state, acked.revision, acked.pages) == (
        opened.alert_id,
        "acknowledged",
        1,
        False,
    )
    assert acked.ack is not None and (acked.ack.by, acked.ack.note) == ("alice", "on my way")
    # The twin's view shows it acknowledged; the checkpoint holds it (a restart keeps it).
    view = orjson.loads(of(sent, "twin.twins")[-1][1])
    assert view["open_alerts"][0]["ack"]["by"] == "alice"
    saved = DeviceMonitor.loads(app.tables["models"][KEY])
    (kept,) = saved.open_alerts()
    assert kept.state == "acknowledged" and kept.ack == acked.ack
    # Redelivered (at least once): refused by the policy, nothing sent.
    before = len(sent)
    asyncio.run(put(agent, (KEY, ack)))
    assert len(sent) == before
    # Shelved: the next event.
    asyncio.run(put(agent, (KEY, action(opened, "shelve", minutes=30.0))))
    shelved = alerts_sent(sent)[-1]
    assert (shelved.state, shelved.revision) == ("shelved", 2)
    assert shelved.shelf is not None and shelved.ack is not None


def test_an_action_the_policy_refuses_is_dropped_and_a_bad_record_is_dead_lettered(
    app: Any, sent: Sent
) -> None:
    asyncio.run(raise_offline_alert(app))
    (opened,) = alerts_sent(sent)
    unknown = opened.model_copy(update={"alert_id": "no-such-alert"})
    agent = app.agents["twin-worker.alert_actions"]
    asyncio.run(put(agent, (KEY, action(unknown)), (KEY, b'{"action": "ack"}')))
    assert alerts_sent(sent) == [opened]  # no event for either
    (letter,) = [orjson.loads(v) for _, v in of(sent, "twin.dlq")]
    assert letter["mqtt_topic"] == "twin.alert_actions" and letter["device_id"] == "pump-0001"
    assert letter["reason"].endswith("[missing]")  # pydantic's rule, where the sink reads it
    # An action keyed by another device than it names: not applied to either.
    asyncio.run(put(agent, (b"vent-0002", action(opened))))
    (_, wrong) = of(sent, "twin.dlq")
    assert "keyed by 'vent-0002'" in orjson.loads(wrong[1])["reason"]


def _critical_monitor() -> DeviceMonitor:
    monitor = DeviceMonitor("pump-0001", "infusion_pump")
    policy = monitor.policy
    policy.on_telemetry(T - timedelta(days=2), 0)
    for i in range(2):
        policy.on_prediction(
            Prediction(
                device_id="pump-0001",
                device_type="infusion_pump",
                metric="motor_current",
                ts=T + timedelta(seconds=i),
                value=0.7,
                limit=0.8,
                trend_per_h=0.03,
                time_to_failure_h=3.0,
                detector_version="t",
            ),
            i + 1,
        )
    (alert,) = policy.open_alerts()
    assert alert.severity == "critical" and alert.pages
    return monitor


def test_the_alert_clock_renotifies_and_brings_back_what_was_shelved(
    tmp_path: Path, sent: Sent
) -> None:
    app = faust.App(
        "clock-test", broker="kafka://127.0.0.1:9", store="memory://", datadir=str(tmp_path)
    )
    topics = {
        kind: app.topic(name, key_type=bytes, value_type=bytes)
        for kind, name in kafka_topics().items()
    }
    devices = DeviceCache({}, {}, every=200, interval_s=30.0)
    state = devices.load("pump-0001")
    state.monitor = _critical_monitor()
    (alert,) = state.open_alerts()
    # The clock's time is the test's own: what it shows does not depend on how fast it runs.
    now = [datetime.now(UTC)]
    agents = register_alert_agents(
        app,
        topics,
        devices,
        group="clock-test",
        renotify_every=timedelta(milliseconds=50),
        max_shelve_minutes=480,
        check_s=1.0,
        clock=lambda: now[0],
    )
    clock: Callable[[], Awaitable[None]] = inspect.unwrap(agents.clock)  # one turn, no loop

    async def run() -> None:
        await clock()  # the page is first seen: the interval starts
        assert alerts_sent(sent) == []
        now[0] += timedelta(milliseconds=60)
        await clock()
        (again,) = alerts_sent(sent)
        assert (again.alert_id, again.state, again.renotified, again.pages) == (
            alert.alert_id,
            "renotified",
            1,
            True,
        )
        view = orjson.loads(of(sent, "twin.twins")[-1][1])
        assert view["open_alerts"][0]["state"] == "renotified"
        # Shelved for a moment: silent while shelved, then back, paging.
        shelve = AlertAction.model_validate_json(
            action(alert, "shelve", minutes=0.002, at=now[0])  # 0.12 s
        )
        shelved = state.monitor.policy.act(shelve, max_shelve_minutes=480)  # type: ignore[union-attr]
        assert isinstance(shelved, Alert)
        now[0] += timedelta(milliseconds=100)  # still on the shelf, past a re-notification
        await clock()
        assert len(alerts_sent(sent)) == 1
        now[0] += timedelta(milliseconds=50)
        await clock()
        back = alerts_sent(sent)[-1]
        assert (back.state, back.pages, back.shelf) == ("unshelved", True, None)

    asyncio.run(run())


# --- the twin API's alert routes -------------------------------------------------------------


def _tokens(path: Path, *roles: str) -> dict[str, str]:
    made: dict[str, str] = {}

    def add(store: TokenStore) -> TokenStore:
        for role in roles:
            store, made[role] = store.add(role, role, now=T)
        return store

    TokenFile(path).change(add)
    return made


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[Any, dict[str, str]]:
    tokens = _tokens(tmp_path / "tokens.json", "viewer", "operator")
    config = WorkerConfig(
        bootstrap="127.0.0.1:9",
        data_dir=tmp_path / "data",
        web_port=6066,
        store="memory://",
        tokens_file=tmp_path / "tokens.json",
        alert_max_shelve_min=480.0,
    )
    return create_app(config), tokens


Call = Callable[..., Awaitable[tuple[int, Any]]]


def test_the_api_lists_acknowledges_and_shelves_alerts(
    guarded: tuple[Any, dict[str, str]], sent: Sent
) -> None:
    app, tokens = guarded

    async def main() -> None:
        await raise_offline_alert(app)
        (opened,) = alerts_sent(sent)
        app.web.init_server()
        async with TestClient(TestServer(app.web.web_app)) as client:

            async def call(method: str, path: str, role: str, body: Any = None) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {tokens[role]}"}
                data = json.dumps(body) if body is not None else None
                async with client.request(method, path, headers=headers, data=data) as response:
                    return response.status, json.loads(await response.text() or "null")

            await check(call, opened)

    async def check(call: Call, opened: Alert) -> None:
        alert_id = opened.alert_id
        status_, body = await call("GET", "/alerts", "viewer")
        assert status_ == 200 and [(a["alert_id"], a["status"]) for a in body] == [
            (alert_id, "open")
        ]
        assert (await call("GET", "/alerts?state=open&device=pump-0001", "viewer"))[1] != []
        assert (await call("GET", "/alerts?state=acknowledged", "viewer"))[1] == []
        assert (await call("GET", "/alerts?device=vent-0002", "viewer"))[1] == []
        for bad in ("state=sleepy", "since=yesterday", "since=2026-11-24T12:00:00", "device=A B"):
            status_, body = await call("GET", f"/alerts?{bad}", "viewer")
            assert status_ == 422 and body["error"].startswith(bad.split("=")[0]), (bad, body)
        assert (await call("GET", f"/alerts/{alert_id}", "viewer"))[1]["status"] == "open"
        assert (await call("GET", "/alerts/no-such-alert", "viewer"))[0] == 404
        # Who may: a viewer may not act (the guard), an operator may.
        assert (await call("POST", f"/alerts/{alert_id}/ack", "viewer", {}))[0] == 403
        status_, body = await call("POST", "/alerts/no-such-alert/ack", "operator", {})
        assert status_ == 404 and "unknown alert" in body["error"]
        for bad_body in ({"minutes": 481}, {"minutes": 0}, {}, {"minutes": 5, "colour": "red"}):
            status_, body = await call("POST", f"/alerts/{alert_id}/shelve", "operator", bad_body)
            assert status_ == 422, bad_body
        assert (
            "480"
            in (await call("POST", f"/alerts/{alert_id}/shelve", "operator", {"minutes": 481}))[1][
                "error"
            ]
        )
        assert (await call("POST", f"/alerts/{alert_id}/ack", "operator", {"note": "x" * 1001}))[
            0
        ] == 422
        # Acknowledged: 202 with the action, sent to the device's owner and audited.
        status_, body = await call("POST", f"/alerts/{alert_id}/ack", "operator", {"note": "on it"})
        assert status_ == 202, body
        assert body["action"]["by"] == "operator" and body["action"]["note"] == "on it"
        assert body["alert"]["alert_id"] == alert_id
        ((key, raw),) = of(sent, "twin.alert_actions")
        assert key == KEY and AlertAction.model_validate_json(raw).action == "ack"
        (audit,) = [orjson.loads(v) for _, v in of(sent, "twin.audit")]
        assert (audit["action"], audit["actor"], audit["role"], audit["subject"]) == (
            "alert_ack",
            "operator",
            "operator",
            alert_id,
        )
        assert audit["old"] == {"status": "open"} and audit["new"]["status"] == "acknowledged"
        # The owner's agent applies it: the API shows it acknowledged.
        await put(app.agents["twin-worker.alert_actions"], (key, raw))
        (acked,) = (await call("GET", "/alerts?state=acknowledged", "viewer"))[1]
        assert acked["ack"]["by"] == "operator" and acked["ack"]["note"] == "on it"
        assert (await call("GET", "/alerts?state=open", "viewer"))[1] == []
        status_, body = await call("POST", f"/alerts/{alert_id}/ack", "operator", {})
        assert status_ == 409 and "already acknowledged" in body["error"]
        # Shelved (an acknowledged alert may be), audited as such.
        status_, body = await call(
            "POST", f"/alerts/{alert_id}/shelve", "operator", {"minutes": 30, "note": "visit"}
        )
        assert status_ == 202 and body["action"]["minutes"] == 30
        await put(app.agents["twin-worker.alert_actions"], of(sent, "twin.alert_actions")[-1])
        (shelved,) = (await call("GET", "/alerts?state=shelved", "viewer"))[1]
        assert shelved["shelf"]["note"] == "visit" and shelved["state"] == "shelved"
        assert [orjson.loads(v)["action"] for _, v in of(sent, "twin.audit")] == [
            "alert_ack",
            "alert_shelve",
        ]
        # The device is back: resolved, in the history, and no more actions on it.
        await put(app.agents["twin-worker.status"], (KEY, status("online", "birth")))
        assert (await call("GET", "/alerts", "viewer"))[1] == []
        (done,) = (await call("GET", "/alerts?state=resolved", "viewer"))[1]
        assert done["alert_id"] == alert_id and done["status"] == "resolved"
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert (await call("GET", f"/alerts?state=resolved&since={future}", "viewer"))[1] == []
        for verb, body in (("ack", {}), ("shelve", {"minutes": 5})):
            status_, answer = await call("POST", f"/alerts/{alert_id}/{verb}", "operator", body)
            assert status_ == 409 and "is resolved" in answer["error"], verb

    asyncio.run(main())
