"""The worker's per-device state: checkpoints restore exactly, and resuming is not a data gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulators.fast_forward import readings
from simulators.fleet import FleetPlan
from twin_stream.worker.processing import DeviceState

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _raw_readings(n: int) -> list[bytes]:
    plan = FleetPlan.generate(1, hours=n / 3600, fault_fraction=0.0, seed=3)
    return [
        r.model_dump_json(exclude_none=True).encode()
        for r in readings(plan, interval_s=1.0, start=NOW - timedelta(seconds=n))
    ]


def test_a_restored_state_scores_exactly_as_the_original() -> None:
    raws = _raw_readings(400)
    original = DeviceState.new("pump-0001")
    for raw in raws[:300]:
        original.on_telemetry(raw, now=NOW)
    copy = DeviceState.restore(
        "pump-0001", original.twin.model_dump_json().encode(), original.models_bytes()
    )
    for raw in raws[300:]:
        a, b = original.on_telemetry(raw, now=NOW), copy.on_telemetry(raw, now=NOW)
        assert [s.score for s in a.scores] == [s.score for s in b.scores]


def test_resuming_from_an_older_checkpoint_counts_no_gaps_but_real_gaps_still_count() -> None:
    raws = _raw_readings(520)
    state = DeviceState.new("pump-0001")
    for raw in raws[:100]:
        state.on_telemetry(raw, now=NOW)
    checkpoint = (state.twin.model_dump_json().encode(), state.models_bytes())
    # the previous owner handled readings 100-199 after its last checkpoint, then died
    resumed = DeviceState.restore("pump-0001", *checkpoint)
    assert resumed.resumed
    resumed.on_telemetry(raws[200], now=NOW)
    assert resumed.twin.quality.gaps == 0
    for raw in raws[210:]:  # 201-209 never arrive: gaps, once they leave the reorder window
        resumed.on_telemetry(raw, now=NOW)
    assert resumed.twin.quality.gaps == 9
    assert resumed.on_telemetry(raws[150], now=NOW).outcome == "stale"  # long gone
    assert resumed.on_telemetry(raws[500], now=NOW).outcome == "duplicate"


def test_a_new_device_is_not_resumed() -> None:
    assert not DeviceState.restore("pump-0001", None, None).resumed


def test_maintenance_done_and_new_firmware_re_baseline_the_device() -> None:
    import orjson

    from twin_stream.domain.events import Command

    raws = _raw_readings(400)
    state = DeviceState.new("pump-0001")
    for raw in raws[:300]:
        state.on_telemetry(raw, now=NOW)
    assert state.monitor is not None and not state.monitor.detector.anomaly.count < 300
    command = Command.create("pump-0001", "maintenance_done", now=NOW, maintenance_epoch=0)
    state.on_command(command.model_dump_json().encode(), now=NOW)
    assert state.monitor.detector.rebaselines == 1
    out = state.on_telemetry(raws[300], now=NOW)
    assert out.scores[0].warming_up  # learning the repaired device's normal afresh
    # a firmware change does the same, once
    upgraded = orjson.loads(raws[301])
    upgraded["fw"] = "9.9.9"
    state.on_telemetry(orjson.dumps(upgraded), now=NOW)
    assert state.monitor.detector.rebaselines == 2
    following = orjson.loads(raws[302])
    following["fw"] = "9.9.9"
    state.on_telemetry(orjson.dumps(following), now=NOW)
    assert state.monitor.detector.rebaselines == 2


def test_checkpoints_of_another_model_version_start_afresh() -> None:
    import pickle
    import zlib

    raws = _raw_readings(50)
    state = DeviceState.new("pump-0001")
    for raw in raws:
        state.on_telemetry(raw, now=NOW)
    detector, policy, fw = pickle.loads(zlib.decompress(state.models_bytes()))
    old = detector.replace(b"ts-detector/2", b"ts-detector/1")
    stale = zlib.compress(pickle.dumps((old, policy, fw)))
    restored = DeviceState.restore("pump-0001", state.twin.model_dump_json().encode(), stale)
    assert restored.monitor is None  # a new monitor is built at the next reading


def test_readings_handled_by_a_previous_owner_that_saved_no_models_are_scored_again() -> None:
    """A new device's twin is saved at its first reading, its models only at their first
    checkpoint: a worker that dies (or loses the partition) in between leaves a twin whose
    window has seen readings no saved model learned. The new owner gets them again (their
    offsets were not committed) and must score them, not skip them as duplicates."""
    raws = _raw_readings(20)
    first_owner = DeviceState.new("pump-0001")
    for raw in raws[:3]:
        first_owner.on_telemetry(raw, now=NOW)
    saved_twin = first_owner.twin.model_dump_json().encode()
    successor = DeviceState.restore("pump-0001", saved_twin, None)
    outs = [successor.on_telemetry(raw, now=NOW) for raw in raws[:5]]
    assert [o.outcome for o in outs] == ["accepted"] * 5
    assert all(len(o.scores) == 1 for o in outs)
    assert successor.on_telemetry(raws[2], now=NOW).outcome == "duplicate"  # now it is one
    assert successor.twin.quality.gaps == 0
    # With saved models, the window stands: what they learned is not learned twice.
    keeper = DeviceState.restore("pump-0001", saved_twin, first_owner.models_bytes())
    assert keeper.on_telemetry(raws[2], now=NOW).outcome == "duplicate"
