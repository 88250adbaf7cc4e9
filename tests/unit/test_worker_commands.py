"""The commands and acks agents without a broker (Faust's ``test_context`` on ``memory://``):
a change becomes the device's whole desired document on ``twin.desired``, a refusal and an
invalid ack go to the dead-letter topic with their reason, a device's answers are the
commands' statuses in the twin table and its view."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.unit.conftest import Sent, put
from tests.unit.test_desired_contract import ack, command, reading
from twin_stream.domain.events import Command

KEY = b"pump-0001"
READING = reading("pump-0001", "infusion_pump", {"motor_current": 0.3})
#: The agents run on the wall clock: commands are issued now (one issued long ago has expired).
NOW = datetime.now(UTC)


def _of(sent: Sent, topic: str) -> list[Any]:
    return [orjson.loads(value) for name, _, value in sent if name == topic]


def _twin(app: Any) -> Any:
    return orjson.loads(app.tables["twins"][KEY])


def test_each_change_goes_to_the_device_as_its_whole_desired_document(app: Any, sent: Sent) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, READING)))
    asyncio.run(
        put(
            app.agents["twin-worker.commands"],
            (KEY, command("cmd-00000001", at=NOW, rate=80.0)),
            (KEY, command("cmd-00000002", at=NOW, sample_interval_s=2.0)),
        )
    )
    documents = [Command.model_validate(d) for d in _of(sent, "twin.desired")]
    assert [d.command_id for d in documents] == ["cmd-00000001", "cmd-00000002"]
    assert documents[-1].desired.as_dict() == {"rate": 80.0, "sample_interval_s": 2.0}
    twin = _twin(app)
    assert documents[-1].twin_version == twin["version"]
    assert {c: r["status"] for c, r in twin["commands"].items()} == {
        "cmd-00000001": "pending",
        "cmd-00000002": "pending",
    }
    assert _of(sent, "twin.dlq") == []


def test_a_refused_command_is_dead_lettered_and_not_counted_against_the_device(
    app: Any, sent: Sent
) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, READING)))
    version = _twin(app)["version"]
    stale = command("cmd-00000001", if_match=version + 5, at=NOW, rate=80.0)
    asyncio.run(put(app.agents["twin-worker.commands"], (KEY, stale)))
    (letter,) = _of(sent, "twin.dlq")
    assert letter["mqtt_topic"] == "twin.commands" and letter["device_id"] == "pump-0001"
    assert letter["reason"].endswith("[precondition_failed]")
    assert _of(sent, "twin.desired") == []
    # The dead-letter agent reads it back, but it is the platform's refusal, not bad data.
    raw = next(value for name, _, value in sent if name == "twin.dlq")
    asyncio.run(put(app.agents["twin-worker.dlq"], (KEY, raw)))
    assert _twin(app)["quality"]["invalid"] == 0


def test_a_rejection_is_in_the_twins_view_with_its_reason_and_a_new_document_goes_out(
    app: Any, sent: Sent
) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, READING)))
    change = command("cmd-00000001", at=NOW, rate=800.0)
    asyncio.run(put(app.agents["twin-worker.commands"], (KEY, change)))
    sent.clear()
    reason = "rate: 800 mL/h is beyond this infusion_pump's make [out_of_range]"
    asyncio.run(
        put(
            app.agents["twin-worker.acks"],
            (KEY, ack("cmd-00000001", "delivered")),
            (KEY, ack("cmd-00000001", "rejected", reason)),
        )
    )
    views = _of(sent, "twin.twins")
    assert views[-1]["commands"]["cmd-00000001"] | {"at": None} == {
        "kind": "set_desired",
        "status": "rejected",
        "version": views[-1]["commands"]["cmd-00000001"]["version"],
        "changes": {"rate": 800.0},
        "previous": {"rate": None},
        "withdraws": [],
        "issued_at": orjson.loads(orjson.dumps(NOW, option=orjson.OPT_UTC_Z)),
        "expires_at": orjson.loads(orjson.dumps(NOW + timedelta(hours=1), option=orjson.OPT_UTC_Z)),
        "at": None,
        "reason": reason,
    }
    assert views[-1]["desired"] == {} and views[-1]["delta"] == {}
    (document,) = _of(sent, "twin.desired")
    assert document["kind"] == "withdraw" and document["desired"]["rate"] is None
    assert _twin(app)["commands"]["cmd-00000001"]["status"] == "rejected"  # saved


def test_a_command_that_expired_on_its_way_is_refused(app: Any, sent: Sent) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, READING)))
    late = command("cmd-00000001", at=NOW - timedelta(hours=2), rate=80.0)  # expired an hour ago
    asyncio.run(put(app.agents["twin-worker.commands"], (KEY, late)))
    (letter,) = _of(sent, "twin.dlq")
    assert letter["reason"].endswith("[expired]") and _of(sent, "twin.desired") == []


def test_an_ack_of_a_command_the_twin_does_not_know_is_dead_lettered(app: Any, sent: Sent) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, READING)))
    asyncio.run(put(app.agents["twin-worker.acks"], (KEY, ack("cmd-0000dead", "applied"))))
    (letter,) = _of(sent, "twin.dlq")
    assert letter["mqtt_topic"] == "twin/v1/devices/pump-0001/ack"  # what the device sent
    assert letter["reason"].endswith("[unknown_command]")
    asyncio.run(put(app.agents["twin-worker.acks"], (KEY, b'{"status": "sure"}')))
    assert len(_of(sent, "twin.dlq")) == 2
