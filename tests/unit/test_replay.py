"""Replay after a restart (issue 14, item 1): a worker that takes a device over resumes it from
its checkpoint and learns every reading after it, and a silent device's offline alert goes
through the status topic so that it is saved and redelivered as every other event.

The worker's own path, without Faust: the tables are dicts that outlive the "crashed" cache,
each telemetry record has its partition and offset, and the agent's steps are those of
``twin_stream.worker.agents`` (``before_reading``, the state's ``on_*``, ``save``)."""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.unit.conftest import raw_readings
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.processing import DeviceState, Outputs
from twin_stream.worker.replay import ReplayPoint, install_replay, plan_seeks

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
PARTITION = 3

Table = dict[bytes, bytes | None]


@dataclass
class Tables:
    twins: Table
    models: Table
    replay: Table

    @classmethod
    def empty(cls) -> Tables:
        return cls({}, {}, {})

    def cache(self, every: int = 50) -> DeviceCache:
        return DeviceCache(
            self.twins, self.models, every=every, interval_s=3600.0, replay=self.replay
        )


def _device(raw: bytes) -> str:
    device_id: str = orjson.loads(raw)["device_id"]
    return device_id


def _handle(cache: DeviceCache, offset: int, raw: bytes) -> Outputs:
    """One telemetry record at ``offset``, as the telemetry agent handles it."""
    device = _device(raw)
    state = cache.load(device)
    if not cache.before_reading(state, PARTITION, offset):
        return Outputs(outcome="replayed")
    out = state.on_telemetry(raw, now=NOW)
    cache.save(device, state, out, reading=True)
    return out


def _scores(outs: list[tuple[int, Outputs]]) -> dict[int, float]:
    return {offset: out.scores[0].score for offset, out in outs if out.scores}


def test_a_replay_point_is_anchored_at_a_new_devices_first_reading() -> None:
    tables = Tables.empty()
    cache = tables.cache(every=50)
    raws = raw_readings(10)
    _handle(cache, 40, raws[0])
    key = _device(raws[0]).encode()
    assert key not in tables.models  # no checkpoint yet (a new device's first reading)
    point = ReplayPoint.decode(tables.replay[key] or b"")
    assert (point.partition, point.offset, point.last_seq) == (PARTITION, 40, None)
    before = dict(tables.replay)
    for offset, raw in enumerate(raws[1:], start=41):
        _handle(cache, offset, raw)
    assert tables.replay == before  # written once, not at every reading


def test_a_checkpoint_moves_the_replay_point_past_its_last_reading() -> None:
    tables = Tables.empty()
    cache = tables.cache(every=5)
    raws = raw_readings(7)
    for offset, raw in enumerate(raws, start=100):
        _handle(cache, offset, raw)
    key = _device(raws[0]).encode()
    point = ReplayPoint.decode(tables.replay[key] or b"")
    state = cache.load(_device(raws[0]))
    assert point.offset == 105  # the 5th reading (offset 104) was the checkpoint's last
    assert state.twin.last_seq is not None
    assert point.last_seq == state.twin.last_seq - 2  # two readings since
    assert key in tables.models


@pytest.mark.parametrize("crash_after", [30, 75, 149])
def test_a_worker_that_takes_over_learns_every_reading_after_the_checkpoint(
    crash_after: int,
) -> None:
    """The reference handles 200 readings without a break. The other run's worker dies after
    ``crash_after`` of them (its committed offset a few records behind); a new worker resumes
    from the tables and reads from where the replay points say: it scores every reading
    from there exactly as the reference did, and ends in the same state."""
    raws = raw_readings(200)
    reference_tables = Tables.empty()
    reference = reference_tables.cache(every=40)
    expected = _scores([(o, _handle(reference, o, r)) for o, r in enumerate(raws)])

    tables = Tables.empty()
    first = tables.cache(every=40)
    seen = [(o, _handle(first, o, r)) for o, r in enumerate(raws[:crash_after])]
    committed = max(0, crash_after - 3)  # Faust commits every few seconds

    second = tables.cache(every=40)  # the new owner: only the tables survive
    seeks = plan_seeks(second.replay_points(), {PARTITION: committed}, max_records=10_000)
    start = seeks.get(PARTITION, committed)
    assert start <= committed
    replayed = [(o, _handle(second, o, raws[o])) for o in range(start, len(raws))]

    again = _scores(replayed)
    assert set(_scores(seen)) | set(again) == set(range(len(raws)))  # none unscored
    assert again == {o: expected[o] for o in again}  # the same scores, from the same state
    device = _device(raws[0])
    final, reference_state = second.load(device), reference.load(device)
    assert final.twin.quality.accepted == reference_state.twin.quality.accepted
    assert final.twin.quality.duplicates == 0  # what the checkpoint held was skipped
    assert _models(final) == _models(reference_state)


def _models(state: DeviceState) -> tuple[Any, ...]:
    """A state's models, comparable: the detector's saved state and each field of the alert
    policy's, pickled one by one (the whole pickle differs with object sharing alone)."""
    assert state.monitor is not None
    policy: dict[str, Any] = state.monitor.policy.__getstate__()  # type: ignore[assignment]
    fields = {k: pickle.dumps(v) for k, v in sorted(policy.items())}
    return state.monitor.detector.dumps(), fields, state.monitor.fw


def test_a_twin_saved_after_the_models_does_not_hide_the_readings_to_replay() -> None:
    """A status event saves the twin (its de-duplication window past the checkpoint): the
    readings after the models' checkpoint are still learned on replay, not dropped as
    duplicates."""
    raws = raw_readings(60)
    tables = Tables.empty()
    first = tables.cache(every=20)
    for offset, raw in enumerate(raws[:30]):
        _handle(first, offset, raw)
    device = _device(raws[0])
    state = first.load(device)
    out = state.on_reported(
        orjson.dumps(
            {
                "v": 1,
                "device_id": device,
                "ts": NOW.isoformat(),
                "seq": 1,
                "settings": {"rate": 50.0, "sample_interval_s": 1.0},
            }
        ),
        now=NOW,
    )
    first.save(device, state, out, reading=False)
    assert orjson.loads(tables.twins[device.encode()] or b"")["last_seq"] == state.twin.last_seq

    second = tables.cache(every=20)
    (start,) = plan_seeks(second.replay_points(), {PARTITION: 30}, max_records=100).values()
    outs = [_handle(second, o, raws[o]) for o in range(start, 40)]
    assert start == 20 and all(out.outcome == "accepted" for out in outs)


def test_an_event_that_changes_an_alert_is_checkpointed_at_once() -> None:
    tables = Tables.empty()
    cache = tables.cache(every=1000)
    raws = raw_readings(5)
    for offset, raw in enumerate(raws):
        _handle(cache, offset, raw)
    device = _device(raws[0])
    key = device.encode()
    assert key not in tables.models
    state = cache.load(device)
    will = {"v": 1, "device_id": device, "state": "offline", "reason": "will", "fw": "1.0.0"}
    out = state.on_status(orjson.dumps({**will, "ts": NOW.isoformat()}), now=NOW)
    assert [a.kind for a in out.alerts] == ["offline"]
    cache.save(device, state, out, reading=False)
    restored = DeviceState.restore(device, tables.twins[key], tables.models[key])
    assert [a.alert_id for a in restored.open_alerts()] == [out.alerts[0].alert_id]
    point = ReplayPoint.decode(tables.replay[key] or b"")
    assert point.offset == len(raws)  # the models hold every reading so far


def test_a_silent_device_gets_one_missed_heartbeat_notice_stamped_when_it_became_overdue() -> None:
    state = DeviceState.new("pump-0001")
    for raw in raw_readings(5):
        state.on_telemetry(raw, now=NOW)
    state.twin.connectivity = "online"
    assert state.missed_heartbeat(now=NOW + timedelta(seconds=20)) is None
    notice = state.missed_heartbeat(now=NOW + timedelta(seconds=45))
    assert notice is not None and notice.reason == "heartbeat"
    assert notice.ts == NOW + timedelta(seconds=30)  # the heartbeat timeout of a 1 s device
    assert state.missed_heartbeat(now=NOW + timedelta(seconds=55)) is None  # sent once

    raw = notice.model_dump_json().encode()
    a = DeviceState.restore(
        "pump-0001", state.twin.model_dump_json().encode(), state.models_bytes()
    )
    b = DeviceState.restore(
        "pump-0001", state.twin.model_dump_json().encode(), state.models_bytes()
    )
    out_a = a.on_status(raw, now=NOW + timedelta(seconds=50))
    out_b = b.on_status(raw, now=NOW + timedelta(seconds=90))  # the same notice, handled later
    (alert,) = out_a.alerts
    assert alert.kind == "offline" and alert.opened_at == notice.ts
    assert [x.alert_id for x in out_b.alerts] == [alert.alert_id]  # the same alert
    assert a.on_status(raw, now=NOW + timedelta(seconds=60)).alerts == []  # applied once


def test_a_missed_heartbeat_notice_is_void_if_the_device_spoke_since() -> None:
    state = DeviceState.new("pump-0001")
    raws = raw_readings(6)
    for raw in raws[:5]:
        state.on_telemetry(raw, now=NOW)
    state.twin.connectivity = "online"
    notice = state.missed_heartbeat(now=NOW + timedelta(seconds=31))
    assert notice is not None
    state.on_telemetry(raws[5], now=NOW + timedelta(seconds=32))  # it came back first
    out = state.on_status(notice.model_dump_json().encode(), now=NOW + timedelta(seconds=33))
    assert out.alerts == [] and state.twin.connectivity == "online"


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    """What ``install_replay`` uses of Faust's consumer: ``seek_to_committed`` and ``seek``."""

    def __init__(self, committed: dict[TP, int]) -> None:
        self.committed = committed
        self.seeks: list[tuple[TP, int]] = []

    async def seek_to_committed(self) -> dict[TP, int]:
        return dict(self.committed)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_faust_reads_the_telemetry_partitions_again_from_their_replay_points() -> None:
    t0, t1, other = TP("twin.telemetry", 0), TP("twin.telemetry", 1), TP("twin.status", 0)
    consumer: Any = FakeConsumer({t0: 500, t1: 80, other: 9})
    points = [ReplayPoint(0, 420, 7, 1), ReplayPoint(0, 610, 9, 1), ReplayPoint(1, 90, 3, 1)]
    install_replay(consumer, "twin.telemetry", lambda: points, max_records=1000)
    install_replay(consumer, "twin.telemetry", lambda: [], max_records=1000)  # once only
    offsets = asyncio.run(consumer.seek_to_committed())
    assert consumer.seeks == [(t0, 420)]  # partition 1's devices are all saved past 80
    assert offsets == {t0: 420, t1: 80, other: 9}  # Faust reads from what it is answered


def test_a_new_devices_first_batch_anchors_its_replay_point_at_the_batchs_first_reading() -> None:
    """The telemetry agent checkpoints a device once per batch, after the batch: the anchor
    of a device new to the worker is its first reading in it, not the last, or a successor
    would skip the readings in between."""
    tables = Tables.empty()
    cache = tables.cache(every=50)
    raws = raw_readings(3)
    device = _device(raws[0])
    state = cache.load(device)
    for offset, raw in enumerate(raws, start=40):
        assert cache.before_reading(state, PARTITION, offset)
        state.on_telemetry(raw, now=NOW)
    cache.save(device, state, Outputs(twin_changed=True, alerts=[]), reading=True)
    point = ReplayPoint.decode(tables.replay[device.encode()] or b"")
    assert (point.offset, point.last_seq) == (40, None)
