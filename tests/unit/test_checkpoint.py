"""The worker's device cache and checkpoints, on plain dicts (no Faust): which devices are due,
when each was last saved, and what a rebalance forgets."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from tests.unit.conftest import raw_readings
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.processing import DeviceState, Outputs

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
DEVICE = "pump-0001"


class Clock:
    def __init__(self, t: float = 10_000.0) -> None:  # time.monotonic: long past interval_s
        self.t = t

    def __call__(self) -> float:
        return self.t


def _cache(
    every: int = 5, interval_s: float = 30.0
) -> tuple[DeviceCache, dict[bytes, bytes | None], dict[bytes, bytes | None], Clock]:
    twins: dict[bytes, bytes | None] = {}
    models: dict[bytes, bytes | None] = {}
    clock = Clock()
    cache = DeviceCache(twins, models, every=every, interval_s=interval_s, clock=clock)
    return cache, twins, models, clock


def _device(raw: bytes) -> str:
    device_id: str = orjson.loads(raw)["device_id"]
    return device_id


def _read(cache: DeviceCache, raw: bytes) -> DeviceState:
    """One reading through the cache, as the telemetry agent handles it."""
    device = _device(raw)
    state = cache.load(device)
    out = state.on_telemetry(raw, now=NOW)
    cache.save(device, state, out, reading=True)
    return state


def test_load_caches_the_state_and_peek_does_not() -> None:
    cache, _, _, _ = _cache()
    peeked = cache.peek(DEVICE)
    assert cache.items() == []
    loaded = cache.load(DEVICE)
    assert loaded is not peeked
    assert cache.load(DEVICE) is loaded
    assert cache.peek(DEVICE) is loaded  # a cached device is read from the cache
    assert cache.items() == [(DEVICE, loaded)]


def test_models_are_saved_every_k_readings_not_on_every_reading() -> None:
    cache, twins, models, clock = _cache(every=5, interval_s=3600.0)
    raws = raw_readings(12)
    device = _device(raws[0])
    loaded_at = clock.t
    _read(cache, raws[0])  # a new device: its first reading is not a checkpoint
    assert device.encode() not in models
    assert device.encode() in twins  # the twin (its first version) is written at once
    assert cache.last_checkpoint(device) == loaded_at  # the interval counts from its load
    for raw in raws[1:4]:
        clock.t += 1
        _read(cache, raw)
    assert device.encode() not in models  # 4 readings: not due yet
    state = cache.load(device)
    assert state.events_since_checkpoint == 4
    assert not cache.is_due(device, state)
    clock.t += 1
    _read(cache, raws[4])  # the 5th reading
    saved = models[device.encode()]
    assert state.events_since_checkpoint == 0
    assert cache.last_checkpoint(device) == clock.t
    for raw in raws[5:10]:
        clock.t += 1
        _read(cache, raw)
    assert models[device.encode()] != saved  # the 5th reading since the checkpoint
    assert twins[device.encode()] is not None


def test_models_are_saved_after_the_interval_even_with_few_readings() -> None:
    cache, _, models, clock = _cache(every=1000, interval_s=30.0)
    raws = raw_readings(3)
    device = _device(raws[0])
    _read(cache, raws[0])
    first = cache.last_checkpoint(device)  # when this worker loaded it
    clock.t += 10
    _read(cache, raws[1])
    assert cache.last_checkpoint(device) == first
    assert device.encode() not in models
    clock.t += 25  # 35 s since the load
    state = cache.load(device)
    assert cache.is_due(device, state)
    _read(cache, raws[2])
    assert cache.last_checkpoint(device) == clock.t
    assert device.encode() in models


def test_a_non_reading_change_writes_the_twin_at_once_but_never_the_models() -> None:
    cache, twins, models, _ = _cache(every=1000, interval_s=3600.0)
    state = cache.load(DEVICE)
    out = state.on_dead_letter()
    cache.save(DEVICE, state, out, reading=False)
    assert twins[DEVICE.encode()] == state.twin.model_dump_json().encode()
    assert DEVICE.encode() not in models
    # Nothing changed: nothing is written.
    twins.clear()
    cache.save(DEVICE, state, Outputs(twin_changed=False), reading=False)
    assert twins == {}


def test_assignment_forgets_the_cache_and_reloads_from_the_tables() -> None:
    cache, twins, _, _ = _cache()
    state = cache.load(DEVICE)
    cache.save(DEVICE, state, state.on_dead_letter(), reading=False)
    state.twin.count_invalid()  # a change after the last save, lost with the cache
    cache.on_assigned()
    assert cache.items() == []
    reloaded = cache.load(DEVICE)
    assert reloaded is not state
    assert reloaded.twin.quality.invalid == 1
    assert reloaded.resumed  # restored from a checkpoint


def test_revocation_forgets_the_cache() -> None:
    cache, _, _, _ = _cache()
    cache.load(DEVICE)
    cache.on_revoked()
    assert cache.items() == []
