"""Desired state as a contract, without a broker: each device type's ranges, the twin's record of
its commands (pending, delivered, applied, rejected, expired), the whole desired document the
worker makes for the device, the If-Match check and the simulated device's side."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from simulators.device import SimulatedDevice
from twin_stream.domain.commands import MAX_COMMANDS
from twin_stream.domain.devices import (
    SETTINGS_BY_TYPE,
    DeviceType,
    check_settings,
    setting_envelope,
)
from twin_stream.domain.events import Command
from twin_stream.domain.messages import DesiredMessage, DesiredSettings
from twin_stream.domain.twin import Twin
from twin_stream.errors import CommandRefused, PayloadRejected
from twin_stream.worker.commands import CommandDesk, if_match_versions
from twin_stream.worker.processing import DeviceState

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def reading(device_id: str, device_type: str, metrics: dict[str, float], seq: int = 1) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "device_id": device_id,
            "device_type": device_type,
            "seq": seq,
            "ts": NOW.isoformat(),
            "fw": "1.0.0",
            "metrics": metrics,
        }
    )


def pump() -> DeviceState:
    """A pump whose type the twin knows (it sent a reading)."""
    state = DeviceState.new("pump-0001")
    state.on_telemetry(reading("pump-0001", "infusion_pump", {"motor_current": 0.3}), now=NOW)
    return state


def command(
    command_id: str,
    ttl: timedelta = HOUR,
    if_match: int | None = None,
    at: datetime = NOW,
    **settings: Any,
) -> bytes:
    made = Command.create(
        "pump-0001",
        "set_desired",
        desired=DesiredSettings.model_validate(settings),
        now=at,
        command_id=command_id,
        ttl=ttl,
    )
    return made.model_copy(update={"if_match": if_match}).model_dump_json().encode()


def ack(command_id: str, status: str, reason: str | None = None, at: datetime = NOW) -> bytes:
    body = {
        "v": 1,
        "device_id": "pump-0001",
        "command_id": command_id,
        "status": status,
        "ts": at.isoformat(),
    }
    if reason is not None:
        body["reason"] = reason
    return orjson.dumps(body)


# --- each device type's ranges -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_type", "rate", "unit", "low", "high"),
    [
        ("infusion_pump", 1500.0, "mL/h", 0.1, 999),
        ("ventilator", 80.0, "1/min", 4, 60),
        ("dialysis_machine", 20.0, "mL/min", 50, 450),
        ("mri_chiller", 5.0, "L/min", 10, 40),
    ],
)
def test_a_rate_out_of_its_types_range_is_refused_naming_the_field_and_the_range(
    device_type: str, rate: float, unit: str, low: float, high: float
) -> None:
    (violation,) = check_settings(device_type, {"rate": rate, "sample_interval_s": 1.0})
    assert violation.detail() == {
        "field": "rate",
        "min": low,
        "max": high,
        "unit": unit,
        "got": rate,
        "error": violation.message,
    }
    assert violation.rule == "out_of_range" and device_type in violation.message
    assert violation.reason.endswith("[out_of_range]")
    # Both ends are in range; the envelope is no type's own range.
    assert check_settings(device_type, {"rate": float(low)}) == []
    assert check_settings(device_type, {"rate": float(high)}) == []


def test_a_setting_the_type_does_not_have_is_refused_and_so_is_an_unknown_one() -> None:
    (no_rate,) = check_settings("patient_monitor", {"rate": 20.0})
    assert (no_rate.rule, no_rate.detail()["min"]) == ("not_a_setting", None)
    assert "a patient_monitor has no rate" in no_rate.message
    (colour,) = check_settings("infusion_pump", {"colour": "red"})
    assert colour.rule == "unknown_setting"


@pytest.mark.parametrize(
    ("settings", "rule"),
    [
        ({"rate": True}, "not_a_number"),
        ({"rate": "80"}, "not_a_number"),
        ({"maintenance_epoch": 1.0}, "not_an_integer"),
        ({"maintenance_epoch": -1}, "out_of_range"),
        ({"sample_interval_s": 0.001}, "out_of_range"),
        ({"rate": float("nan")}, "out_of_range"),
    ],
)
def test_values_that_are_not_a_settings_kind_are_refused(
    settings: dict[str, Any], rule: str
) -> None:
    assert [v.rule for v in check_settings("infusion_pump", settings)] == [rule]


def test_every_type_has_every_setting_but_rate_and_the_wire_schema_is_their_envelope() -> None:
    for device_type in DeviceType:
        assert set(SETTINGS_BY_TYPE[device_type]) >= {"sample_interval_s", "maintenance_epoch"}
    assert "rate" not in SETTINGS_BY_TYPE[DeviceType.PATIENT_MONITOR]
    schema = DesiredSettings.model_json_schema()["properties"]
    for name in ("rate", "sample_interval_s", "maintenance_epoch"):
        bounds = schema[name]["anyOf"][0]
        assert (bounds["minimum"], bounds["maximum"]) == setting_envelope(name)


# --- the twin's commands ---------------------------------------------------------------------


def test_a_change_is_merged_into_the_whole_desired_document_with_its_version() -> None:
    state = pump()
    first = state.on_command(command("cmd-00000001", rate=80.0), now=NOW)
    second = state.on_command(command("cmd-00000002", sample_interval_s=2.0), now=NOW)
    (doc1,), (doc2,) = first.documents, second.documents
    assert doc1.desired.as_dict() == {"rate": 80.0}
    # The second document holds both changes: a device that missed the first loses nothing.
    assert doc2.desired.as_dict() == {"rate": 80.0, "sample_interval_s": 2.0}
    assert (doc2.command_id, doc2.twin_version) == ("cmd-00000002", state.twin.version)
    assert doc2.twin_version == doc1.twin_version + 1
    assert [r.status for r in state.twin.commands.values()] == ["pending", "pending"]
    message = DesiredMessage.model_validate(
        doc2.model_dump(
            include={"command_id", "twin_version", "issued_at", "expires_at", "desired"}
        )
    )
    assert message.desired == doc2.desired


def test_a_redelivered_command_changes_nothing_and_sends_the_current_document_again() -> None:
    state = pump()
    state.on_command(command("cmd-00000001", rate=80.0), now=NOW)
    version = state.twin.version
    again = state.on_command(command("cmd-00000001", rate=80.0), now=NOW)
    assert not again.twin_changed and state.twin.version == version
    assert [d.command_id for d in again.documents] == ["cmd-00000001"]


def test_if_match_is_checked_against_the_version_when_the_change_is_applied() -> None:
    state = pump()
    version = state.twin.version
    state.on_command(command("cmd-00000001", if_match=version, rate=80.0), now=NOW)
    with pytest.raises(CommandRefused) as refused:  # the same If-Match again: stale now
        state.on_command(command("cmd-00000002", if_match=version, rate=90.0), now=NOW)
    assert (refused.value.status, refused.value.version) == (412, version + 1)
    assert refused.value.reason.endswith("[precondition_failed]")
    assert state.twin.desired == {"rate": 80.0} and "cmd-00000002" not in state.twin.commands


def test_the_agent_refuses_what_the_type_does_not_allow_and_a_device_of_unknown_type() -> None:
    state = pump()
    out = state.on_command(command("cmd-00000001", rate=999.0), now=NOW)  # a pump's top rate
    assert out.documents[0].desired.rate == 999.0
    stranger = DeviceState.new("pump-0001")  # no reading yet: its type is not known
    with pytest.raises(CommandRefused) as unknown:
        stranger.on_command(command("cmd-00000002", rate=80.0), now=NOW)
    assert unknown.value.status == 409


def test_an_out_of_range_command_on_the_topic_is_refused_with_its_details() -> None:
    state = pump()
    raw = command("cmd-00000001", rate=80.0).replace(b'"rate":80.0', b'"rate":1000.0')
    with pytest.raises(ValueError, match="less than or equal to 999"):  # beyond the envelope
        state.on_command(raw, now=NOW)
    vent = DeviceState.new("vent-0002")
    vent.on_telemetry(reading("vent-0002", "ventilator", {"tidal_volume": 450.0}), now=NOW)
    raw = command("cmd-00000002", rate=80.0).replace(b"pump-0001", b"vent-0002")
    with pytest.raises(CommandRefused) as refused:
        vent.on_command(raw, now=NOW)
    assert refused.value.status == 422
    assert refused.value.details[0] | {"error": ""} == {
        "field": "rate",
        "min": 4,
        "max": 60,
        "unit": "1/min",
        "got": 80.0,
        "error": "",
    }


def test_acks_move_every_command_the_acked_document_carries() -> None:
    state = pump()
    state.on_command(command("cmd-00000001", rate=80.0), now=NOW)
    state.on_command(command("cmd-00000002", sample_interval_s=2.0), now=NOW)
    state.on_command(command("cmd-00000003", maintenance_epoch=1), now=NOW)
    commands = state.twin.commands
    state.on_ack(ack("cmd-00000002", "delivered"), now=NOW)
    assert [r.status for r in commands.values()] == ["delivered", "delivered", "pending"]
    out = state.on_ack(ack("cmd-00000002", "applied"), now=NOW + timedelta(seconds=1))
    assert out.twin_changed and not out.documents
    assert [r.status for r in commands.values()] == ["applied", "applied", "pending"]
    assert commands["cmd-00000001"].at == NOW + timedelta(seconds=1)
    state.on_ack(ack("cmd-00000001", "delivered"), now=NOW)  # late: a finished one stays so
    assert commands["cmd-00000001"].status == "applied"
    assert state.twin.last_command_id == "cmd-00000002"


def test_a_rejected_change_leaves_desired_state_and_a_new_document_goes_out() -> None:
    state = pump()
    state.on_command(command("cmd-00000001", rate=80.0), now=NOW)
    state.on_ack(ack("cmd-00000001", "applied"), now=NOW)
    state.on_command(command("cmd-00000002", rate=400.0, sample_interval_s=2.0), now=NOW)
    out = state.on_ack(ack("cmd-00000002", "rejected", "rate: beyond this make"), now=NOW)
    record = state.twin.commands["cmd-00000002"]
    assert (record.status, record.reason) == ("rejected", "rate: beyond this make")
    # Each setting goes back to what it was: the applied rate stays, the interval leaves.
    assert state.twin.desired == {"rate": 80.0}
    (doc,) = out.documents
    assert doc.kind == "withdraw" and doc.desired.as_dict() == {"rate": 80.0}
    withdraw = state.twin.commands[doc.command_id]
    assert withdraw.withdraws == ["cmd-00000002"] and withdraw.status == "pending"
    assert state.twin.commands["cmd-00000001"].status == "applied"


def test_a_command_not_applied_in_time_expires_and_its_change_leaves_the_document() -> None:
    state = pump()
    state.twin.reported = {"rate": 50.0, "sample_interval_s": 1.0, "maintenance_epoch": 0}
    state.on_command(command("cmd-00000001", ttl=timedelta(minutes=5), rate=80.0), now=NOW)
    state.on_command(command("cmd-00000002", ttl=HOUR, sample_interval_s=2.0), now=NOW)
    assert state.on_heartbeat(now=NOW + timedelta(minutes=4)).documents == []
    out = state.on_heartbeat(now=NOW + timedelta(minutes=5))
    expired = state.twin.commands["cmd-00000001"]
    assert expired.status == "expired" and "not applied before" in (expired.reason or "")
    assert state.twin.desired == {"sample_interval_s": 2.0}
    assert "rate" not in state.twin.delta
    (doc,) = out.documents
    assert doc.desired.as_dict() == {"sample_interval_s": 2.0}
    # The new document is valid as long as the change it still carries.
    assert doc.expires_at == NOW + HOUR
    assert state.on_heartbeat(now=NOW + timedelta(minutes=6)).documents == []


def test_a_device_saying_expired_is_believed_within_its_clock() -> None:
    state = pump()
    state.on_command(command("cmd-00000001", ttl=timedelta(minutes=5), rate=80.0), now=NOW)
    sent_at = NOW + timedelta(minutes=5)  # the device's clock is a little ahead
    state.on_ack(ack("cmd-00000001", "expired", "too late", at=sent_at), now=NOW)
    assert state.twin.commands["cmd-00000001"].status == "expired"
    assert state.twin.desired == {}


def test_a_later_change_of_the_same_setting_stands_when_an_earlier_one_expires() -> None:
    state = pump()
    state.on_command(command("cmd-00000001", ttl=timedelta(minutes=5), rate=80.0), now=NOW)
    state.on_command(command("cmd-00000002", ttl=HOUR, rate=90.0), now=NOW)
    state.on_heartbeat(now=NOW + timedelta(minutes=5))
    assert state.twin.desired == {"rate": 90.0}


def test_an_ack_of_an_unknown_command_or_another_device_is_invalid() -> None:
    state = pump()
    with pytest.raises(PayloadRejected, match=r"\[unknown_command\]$"):
        state.on_ack(ack("cmd-99999999", "applied"), now=NOW)
    state.on_command(command("cmd-00000001", rate=80.0), now=NOW)
    other = ack("cmd-00000001", "applied").replace(b"pump-0001", b"pump-0006")
    with pytest.raises(PayloadRejected, match=r"\[device_mismatch\]$"):
        state.on_ack(other, now=NOW)


def test_a_twin_remembers_its_newest_commands_and_forgets_finished_ones_first() -> None:
    state = pump()
    state.on_command(command("cmd-00000000", ttl=HOUR, rate=10.0), now=NOW)
    short = timedelta(minutes=1)
    for n in range(1, MAX_COMMANDS):
        state.on_command(command(f"cmd-{n:08d}", ttl=short, maintenance_epoch=n), now=NOW)
    commands = state.twin.commands
    assert len(commands) == MAX_COMMANDS
    # All but the first expire, and their withdrawal is one more command to remember: the
    # oldest finished one makes room, not the older one still pending.
    (doc,) = state.on_heartbeat(now=NOW + short).documents
    assert len(commands) == MAX_COMMANDS and doc.command_id in commands
    assert commands["cmd-00000000"].status == "pending" and "cmd-00000001" not in commands
    assert doc.desired.as_dict() == {"rate": 10.0}
    for n in range(MAX_COMMANDS):  # with nothing finished, the oldest goes
        state.on_command(command(f"cmd-1{n:07d}", maintenance_epoch=n), now=NOW + short)
    assert len(commands) == MAX_COMMANDS and "cmd-00000000" not in commands


def test_a_twin_saved_before_commands_existed_restores_and_the_new_one_round_trips() -> None:
    old = orjson.loads(Twin(device_id="pump-0001").model_dump_json())
    del old["commands"]
    assert Twin.model_validate_json(orjson.dumps(old)).commands == {}
    state = pump()
    state.on_command(command("cmd-00000001", rate=80.0), now=NOW)
    state.on_ack(ack("cmd-00000001", "rejected", "no"), now=NOW)
    saved = state.twin.model_dump_json()
    assert Twin.model_validate_json(saved) == state.twin


# --- If-Match and the owner's wait for the agent's verdict ---------------------------------------


def test_if_match_takes_bare_quoted_and_listed_versions_and_never_a_weak_one() -> None:
    assert if_match_versions(None) is None and if_match_versions(" * ") is None
    assert if_match_versions("7") == {7}
    assert if_match_versions('"7"') == {7}
    assert if_match_versions('"7", 9') == {7, 9}
    assert if_match_versions('W/"7"') == frozenset()
    for bad in ("seven", '"7', "-1", "٣"):
        with pytest.raises(CommandRefused) as refused:
            if_match_versions(bad)
        assert refused.value.status == 400


class _Topic:
    """A topic whose records go to a queue (the commands) or a list (the dead letters)."""

    def __init__(self, name: str, queue: asyncio.Queue[bytes] | None = None) -> None:
        self.name, self.queue, self.sent = name, queue, list[bytes]()

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append(value)
        if self.queue is not None:
            await self.queue.put(value)


class _Event:
    def __init__(self, value: bytes) -> None:
        self.value = value


def test_two_puts_with_the_same_if_match_cannot_both_succeed() -> None:
    state = pump()
    version = state.twin.version

    async def run() -> list[int]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        topics = {"commands": _Topic("twin.commands", queue), "dlq": _Topic("twin.dlq")}
        desk = CommandDesk(topics, timeout_s=5.0)

        async def agent() -> None:  # the commands agent: one record at a time, in order
            while True:
                raw = await queue.get()
                try:
                    desk.apply(state, _Event(raw), datetime.now(UTC))
                except CommandRefused:
                    pass

        running = asyncio.create_task(agent())
        try:
            verdicts = await asyncio.gather(
                *(
                    desk.put("pump-0001", state, body, if_match=f'"{version}"')
                    for body in (b'{"rate": 80.0}', b'{"rate": 90.0}')
                )
            )
        finally:
            running.cancel()
        assert sorted(v.version or 0 for v in verdicts) == [version + 1, version + 1]
        return sorted(v.status for v in verdicts)

    # Both pass the view's own check (nothing applied yet); the agent lets one through.
    assert asyncio.run(run()) == [202, 412]
    assert state.twin.version == version + 1 and len(state.twin.commands) == 1


def test_a_refused_put_answers_at_once_and_goes_to_the_dead_letter_topic() -> None:
    state = pump()
    topics = {"commands": _Topic("twin.commands"), "dlq": _Topic("twin.dlq")}
    desk = CommandDesk(topics, timeout_s=0.1)

    def put(body: bytes, **kwargs: Any) -> Any:
        return asyncio.run(desk.put("pump-0001", state, body, **kwargs))

    out_of_range = put(b'{"rate": 1500}')
    assert out_of_range.status == 422
    assert out_of_range.body["details"][0]["field"] == "rate"
    assert out_of_range.body["details"][0]["max"] == 999
    stale = put(b'{"rate": 80}', if_match=str(state.twin.version + 3))
    assert (stale.status, stale.body["version"], stale.headers) == (
        412,
        state.twin.version,
        {"ETag": f'"{state.twin.version}"'},
    )
    assert put(b"[1]").status == 422 and put(b"{}").status == 422
    assert put(b'{"rate": 80}', ttl_s="0").status == 422
    assert put(b'{"rate": 80}', if_match="soon").status == 400
    letters = [orjson.loads(v) for v in topics["dlq"].sent]
    assert len(letters) == 6 and topics["commands"].sent == []
    assert all(
        x["mqtt_topic"] == "twin.commands" and x["device_id"] == "pump-0001" for x in letters
    )
    assert letters[0]["reason"].endswith("[out_of_range]")
    assert letters[1]["reason"].endswith("[precondition_failed]")
    # Sent, but no agent answers: 504, the change may still be applied.
    timed_out = put(b'{"rate": 80}')
    assert timed_out.status == 504 and timed_out.body["command_id"]


# --- the simulated device's side ---------------------------------------------------------------


def _message(command_id: str, **desired: Any) -> DesiredMessage:
    return DesiredMessage.model_validate(
        {
            "command_id": command_id,
            "twin_version": 3,
            "issued_at": NOW,
            "expires_at": NOW + HOUR,
            "desired": desired,
        }
    )


def test_a_simulated_device_acks_delivered_then_applies_the_whole_document() -> None:
    device = SimulatedDevice.create("vent-0002", "ventilator", seed=1)
    acks = device.receive(
        _message("cmd-00000001", rate=16.0, sample_interval_s=2.0), t_s=0, wall=NOW
    )
    assert [a.status for a in acks] == ["delivered", "applied"]
    assert (device.settings.rate, device.settings.sample_interval_s) == (16.0, 2.0)
    again = device.receive(_message("cmd-00000001", rate=16.0), t_s=0, wall=NOW)
    assert [a.status for a in again] == ["applied"]  # retained, delivered again: applied once


def test_a_simulated_device_refuses_what_its_type_or_its_make_cannot_do() -> None:
    pump_device = SimulatedDevice.create("pump-0001", "infusion_pump", seed=1)
    rate = pump_device.settings.rate
    beyond_make = pump_device.apply_desired(_message("cmd-00000001", rate=800.0), t_s=0, wall=NOW)
    assert beyond_make.status == "rejected" and pump_device.settings.rate == rate
    assert "500" in (beyond_make.reason or "") and "make" in (beyond_make.reason or "")
    vent = SimulatedDevice.create("vent-0002", "ventilator", seed=1)
    beyond_type = vent.apply_desired(_message("cmd-00000002", rate=80.0), t_s=0, wall=NOW)
    assert beyond_type.status == "rejected"
    assert (beyond_type.reason or "").endswith("[out_of_range]")
