"""The worker's per-device state: checkpoints restore exactly, and resuming is not a data gap."""

from __future__ import annotations

import pickle
import zlib
from datetime import UTC, datetime

import pytest

from tests.unit.conftest import raw_readings
from twin_stream.domain.detection import detector as detector_module
from twin_stream.worker.processing import DeviceState

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_a_restored_state_scores_exactly_as_the_original() -> None:
    raws = raw_readings(400)
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
    raws = raw_readings(520)
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

    raws = raw_readings(400)
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


def test_checkpoints_of_another_model_version_relearn_the_models_and_keep_the_alerts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raws = raw_readings(50)
    state = DeviceState.new("pump-0001")
    for raw in raws[:40]:
        state.on_telemetry(raw, now=NOW)
    assert state.monitor is not None
    saved, twin = state.models_bytes(), state.twin.model_dump_json().encode()
    monkeypatch.setattr(detector_module, "DETECTOR_VERSION", "ts-detector/99")
    monkeypatch.setattr(detector_module.DeviceDetector, "version", "ts-detector/99")
    restored = DeviceState.restore("pump-0001", twin, saved)
    assert restored.monitor is not None and restored.refusals == []  # an upgrade: no letter
    assert restored.monitor.policy.last_seq == state.monitor.policy.last_seq  # alert state kept
    assert restored.on_telemetry(raws[40], now=NOW).scores[0].warming_up  # models re-learned
    # The pickle of before issue 23 is never loaded: a new monitor at the next reading.
    legacy = zlib.compress(pickle.dumps(("detector", None, "1.0.0")))
    assert DeviceState.restore("pump-0001", twin, legacy).monitor is None
