"""Failures and re-baselines on the worker, without a broker (Faust's test context on
``memory://``): a recorded failure of a device with a frozen healthy reference sends what its
health index did to the fleet topic; a device without one, or a record of another device, is
dead-lettered with the reason; a re-baseline makes the device learn its reference afresh. The
fleet models every worker holds learn from those lessons."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.unit.conftest import Sent, put
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.records import FleetLesson, LifecycleEvent
from twin_stream.errors import PayloadRejected
from twin_stream.worker.fleet import FleetModels, learn_lesson
from twin_stream.worker.processing import DeviceState
from twin_stream.worker.views import lifecycle_event

T0 = datetime(2026, 12, 1, tzinfo=UTC)
KEY = b"chiller-0001"


def _reading(seq: int, level: float) -> bytes:
    ts = (T0 + timedelta(minutes=seq)).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "v": 1,
            "device_id": "chiller-0001",
            "device_type": "mri_chiller",
            "seq": seq,
            "ts": ts,
            "fw": "1.0.0",
            "metrics": {
                "helium_level": 80.0 - level + (seq % 5) * 0.01,
                "coldhead_temp": 4.2 + level * 0.1 + (seq % 3) * 0.001,
                "compressor_temp": 40.0 + (seq % 7) * 0.02,
                "cooling_water_flow": 20.0 + (seq % 4) * 0.05,
            },
        }
    )


def _event(kind: str, at: datetime, device_id: str = "chiller-0001") -> bytes:
    event = LifecycleEvent(
        event_id="e" * 12, kind=kind, device_id=device_id, at=at, recorded_at=at, by="ann"
    )  # type: ignore[arg-type]
    return event.model_dump_json().encode()


def _state(readings: int) -> DeviceState:
    state = DeviceState.new("chiller-0001")
    for seq in range(readings):
        state.on_telemetry(_reading(seq, 0.0), now=T0 + timedelta(minutes=seq))
    return state


def test_a_failure_of_a_device_with_a_reference_becomes_a_fleet_lesson() -> None:
    state = _state(600)
    assert state.monitor is not None and state.monitor.detector.health.reference_frozen
    at = T0 + timedelta(minutes=590)
    out = state.on_lifecycle(_event("failure", at), now=at)
    (lesson,) = out.lessons
    assert lesson.device_type == "mri_chiller" and lesson.failed_at == at
    assert lesson.history and all(t <= lesson.failed_after_h for t, _ in lesson.history)
    assert lesson.failed_after_h > 0


def test_a_failure_before_any_reference_is_refused_with_the_reason() -> None:
    state = _state(5)
    with pytest.raises(PayloadRejected, match=r"\[no_reference\]"):
        state.on_lifecycle(_event("failure", T0 + timedelta(minutes=4)), now=T0)


def test_a_rebaseline_relearns_the_healthy_reference() -> None:
    state = _state(600)
    assert state.monitor is not None
    health = state.monitor.detector.health
    assert health.reference_frozen
    state.on_lifecycle(_event("rebaseline", T0 + timedelta(minutes=600)), now=T0)
    assert not state.monitor.detector.health.reference_frozen


def test_the_lifecycle_agent_sends_the_lesson_or_dead_letters(app: Any, sent: Sent) -> None:
    readings = [(KEY, _reading(seq, 0.0)) for seq in range(600)]
    asyncio.run(put(app.agents["twin-worker.telemetry"], *readings))
    at = T0 + timedelta(minutes=599)
    asyncio.run(
        put(
            app.agents["twin-worker.lifecycle"],
            (KEY, _event("failure", at)),
            (KEY, _event("failure", at, device_id="chiller-0002")),  # not this record's device
        )
    )
    lessons = [(k, v) for name, k, v in sent if name == "twin.fleet"]
    (key, value) = lessons[0]
    assert len(lessons) == 1 and key == b"mri_chiller"  # keyed by type: one worker learns it
    lesson = FleetLesson.model_validate_json(value)
    assert lesson.device_id == "chiller-0001"
    assert lesson.failure_id.startswith("mri_chiller|chiller-0001|")
    letters = [orjson.loads(v) for name, _, v in sent if name == "twin.dlq"]
    assert len(letters) == 1 and "[device_mismatch]" in letters[0]["reason"]


def _lessons(state: DeviceState, *minutes: int) -> list[tuple[bytes, bytes]]:
    records = []
    for m in minutes:
        at = T0 + timedelta(minutes=m)
        (lesson,) = state.on_lifecycle(_event("failure", at), now=at).lessons
        records.append((lesson.key, lesson.model_dump_json().encode()))
    return records


def test_the_fleet_agent_learns_each_failure_once_and_dead_letters_the_rest(
    app: Any, sent: Sent
) -> None:
    """The owner of a type's partition of twin.fleet learns the type's model into the
    ``fleet`` table (its changelog is the checkpoint): a lesson read twice is learned once; one
    that does not validate, or keyed by another type, is dead-lettered with the reason."""
    records = _lessons(_state(600), 500, 560, 590)
    key, value = records[0]
    asyncio.run(
        put(
            app.agents["twin-worker.fleet_lessons"],
            *records,
            (key, value),  # the same failure again (a redelivery)
            (key, b'{"not": "a lesson"}'),
            (b"infusion_pump", value),  # a chiller's lesson on the pumps' key
        )
    )
    table = app.tables["fleet"]
    model = FleetModel.from_json(orjson.loads(table[b"mri_chiller"]))
    assert model.failures == 3
    assert sorted(model.learned) == sorted(
        FleetLesson.model_validate_json(v).failure_id for _, v in records
    )
    assert table.get(b"infusion_pump") is None
    reasons = [orjson.loads(v)["reason"] for name, _, v in sent if name == "twin.dlq"]
    assert len(reasons) == 2, reasons
    assert "[missing]" in reasons[0] and "[key_mismatch]" in reasons[1]


def test_every_worker_reads_each_types_latest_model_from_the_changelog() -> None:
    """What a worker that owns no fleet partition predicts with (and a restarted one starts
    from): the latest record of each type on the table's changelog; one that does not restore
    leaves the type's model as it was."""
    records = _lessons(_state(600), 500, 560, 590)
    states: list[bytes] = []
    state = None
    for _, value in records:
        state = learn_lesson(state, FleetLesson.model_validate_json(value))
        assert state is not None
        states.append(state)
    models = FleetModels()
    changelog = [(b"mri_chiller", s) for s in states]
    assert models.load(changelog) == 3
    model = models.get("mri_chiller")
    assert model is not None and model.failures == 3
    assert models.load([(b"mri_chiller", b'{"version": 2}')]) == 3  # kept as it was
    assert models.get("mri_chiller") is model
    assert models.get("infusion_pump") is None
    again = learn_lesson(states[-1], FleetLesson.model_validate_json(records[0][1]))
    assert again is None  # learned before: no new record


def test_a_failure_in_the_future_or_without_a_zone_is_refused() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    for body, reason in (
        (b'{"at": "2026-12-07T13:00:00Z"}', "in the future"),
        (b'{"at": "2026-12-07T11:00:00"}', "needs a time zone"),
        (b'{"at": "yesterday"}', "not a time"),
        (b"{}", "is required"),
        (b'{"at": "2026-12-07T11:00:00Z", "patient": "x"}', "not a field"),
    ):
        try:
            lifecycle_event("failure", "chiller-0001", body, by="ann", now=now)
        except ValueError as e:
            assert reason in str(e), (body, e)
        else:
            raise AssertionError(f"{body!r} was accepted")
    event = lifecycle_event("rebaseline", "chiller-0001", b"", by="ann", now=now)
    assert event.at == now and event.kind == "rebaseline"
