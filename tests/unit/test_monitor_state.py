"""A device monitor's saved state (issue 23, item 5): model state that is signed and checked
before it is unpickled, alert state that survives a model upgrade and a refused signature, and
the worker's dead letter for state it refused."""

from __future__ import annotations

import asyncio
import base64
import pickle
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.unit.conftest import raw_readings
from tests.unit.test_alert_lifecycle import T0, prediction
from twin_stream import state_signing
from twin_stream.config import load_settings
from twin_stream.domain.alert_lifecycle import AlertAction
from twin_stream.domain.detection import detector as detector_module
from twin_stream.domain.events import Alert
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.domain.state_envelope import StateSigner, ephemeral_signer, pack, unpack
from twin_stream.domain.state_records import encode_record
from twin_stream.errors import ConfigError, StateError, StateSignatureInvalid, StateVersionMismatch
from twin_stream.worker.agents import DeviceAgents
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.commands import CommandDesk
from twin_stream.worker.processing import DeviceState

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
KEY = StateSigner(b"a worker's key, 32 bytes long..")


def _act(monitor: DeviceMonitor, alert: Alert, verb: str, **fields: Any) -> Alert:
    event = monitor.policy.act(
        AlertAction(
            action_id=f"act-{verb}-0001",
            alert_id=alert.alert_id,
            device_id=alert.device_id,
            action=verb,  # type: ignore[arg-type]
            by="alice",
            role="operator",
            at=T0 + timedelta(minutes=5),
            **fields,
        ),
        max_shelve_minutes=480,
    )
    assert isinstance(event, Alert), event
    return event


def monitor_with_alerts() -> tuple[DeviceMonitor, Alert, Alert]:
    """A pump that learned 300 readings, with a critical predicted failure acknowledged and
    an offline alert shelved."""
    monitor = DeviceMonitor("pump-0001", "infusion_pump")
    for i in range(300):
        monitor.on_reading(
            T0 - timedelta(days=2) + timedelta(seconds=i), i, {"motor_current": 0.25}, fw="1.0"
        )
    monitor.policy.on_prediction(prediction(3.0, 0), 300)
    (critical,) = monitor.policy.on_prediction(prediction(3.0, 1), 301)
    (offline,) = monitor.on_connectivity(T0 + timedelta(minutes=2), online=False)
    acked = _act(monitor, critical, "ack", note="on it")
    shelved = _act(monitor, offline, "shelve", minutes=60)
    assert acked.ack is not None and shelved.shelf is not None
    return monitor, acked, shelved


def _by_id(alerts: list[Alert]) -> dict[str, Alert]:
    return {a.alert_id: a for a in alerts}


def test_a_restored_monitor_scores_and_alerts_as_the_saved_one() -> None:
    monitor, _, _ = monitor_with_alerts()
    restored = DeviceMonitor.loads(monitor.dumps(KEY), KEY)
    assert _by_id(restored.open_alerts()) == _by_id(monitor.open_alerts())
    assert restored.policy.paged == monitor.policy.paged
    assert restored.policy.conditions.keys() == monitor.policy.conditions.keys()
    assert restored.fw == "1.0"
    for i in range(301, 320):  # the same readings make the same scores and the same events
        reading = {"motor_current": 0.25 + (i % 4) * 0.1}
        at = T0 + timedelta(minutes=3, seconds=i)
        a, b = monitor.on_reading(at, i, reading), restored.on_reading(at, i, reading)
        assert a.score.score == b.score.score and a.alerts == b.alerts
    later = T0 + timedelta(hours=2)  # the shelf's time is over: the same return, both sides
    assert restored.policy.on_clock(later, None) == monitor.policy.on_clock(later, None)


def test_a_detector_upgrade_relearns_the_models_and_keeps_every_alert_ack_and_shelf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monitor, acked, shelved = monitor_with_alerts()
    saved = monitor.dumps(KEY)
    monkeypatch.setattr(detector_module, "DETECTOR_VERSION", "ts-detector/99")
    monkeypatch.setattr(detector_module.DeviceDetector, "version", "ts-detector/99")
    restored = DeviceMonitor.restore(saved, KEY)
    assert isinstance(restored.models_refused, StateVersionMismatch)
    assert restored.alerts_refused is None
    kept = _by_id(restored.monitor.open_alerts())
    assert kept == {acked.alert_id: acked, shelved.alert_id: shelved}
    assert kept[acked.alert_id].ack is not None and kept[acked.alert_id].ack.note == "on it"
    assert kept[shelved.alert_id].shelf == shelved.shelf
    assert restored.monitor.policy.paged == monitor.policy.paged
    detector = restored.monitor.detector
    assert detector.version == "ts-detector/99" and detector is not monitor.detector
    out = restored.monitor.on_reading(T0 + timedelta(minutes=3), 302, {"motor_current": 0.25})
    assert out.score.warming_up  # learning afresh
    # acknowledged and shelved, they still page nobody
    assert all(not a.pages for a in restored.monitor.open_alerts())
    with pytest.raises(StateVersionMismatch):
        DeviceMonitor.loads(saved, KEY)  # all or nothing


class _Bomb:
    """A pickle that runs code when it is loaded (what a writer of the changelog could plant)."""

    ran = False

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_Bomb._explode, ())

    @staticmethod
    def _explode() -> None:
        _Bomb.ran = True


def _planted(saved: bytes, models: bytes, signature: str | None = None) -> bytes:
    """``saved`` with its models replaced (its signature kept unless given)."""
    envelope = unpack(saved)
    header = envelope.header.model_dump()
    header["models"] = len(models)
    if signature is not None:
        header["sig"] = signature
    raw = orjson.dumps(header)
    return b"".join((saved[:4], len(raw).to_bytes(4, "big"), raw, envelope.alerts, models))


def test_model_state_whose_signature_fails_is_never_unpickled_and_its_alerts_are_kept() -> None:
    monitor, acked, shelved = monitor_with_alerts()
    saved = monitor.dumps(KEY)
    good_models = unpack(saved).models
    head = good_models[: 6 + int.from_bytes(good_models[4:6], "big")]  # its version header
    bomb = head + zlib.compress(pickle.dumps(_Bomb()))
    for planted in (_planted(saved, bomb), _planted(saved, bomb, "0" * 64)):
        restored = DeviceMonitor.restore(planted, KEY)
        assert isinstance(restored.models_refused, StateSignatureInvalid)
        assert not _Bomb.ran
        assert _by_id(restored.monitor.open_alerts()) == {
            acked.alert_id: acked,
            shelved.alert_id: shelved,
        }
        assert restored.monitor.detector is not monitor.detector
    # signed with another key (another deployment's, or a key made for another process)
    with pytest.raises(StateSignatureInvalid, match="TWIN_STATE__SIGNING_KEY"):
        DeviceMonitor.loads(saved, StateSigner(b"not the worker's key"))
    # one device's signed models do not pass for another's
    other = pack("pump-0002", "infusion_pump", None, encode_record(monitor.policy), head, KEY)
    moved = other[: -len(head)] + head
    assert unpack(moved).header.device_id == "pump-0002"
    signed_for_0001 = KEY.sign("pump-0001", head)
    assert isinstance(
        DeviceMonitor.restore(_planted(moved, head, signed_for_0001), KEY).models_refused,
        StateSignatureInvalid,
    )


def test_a_pickle_of_the_old_format_is_refused_without_being_loaded() -> None:
    legacy = zlib.compress(pickle.dumps((b"detector", _Bomb(), "1.0")))
    with pytest.raises(StateVersionMismatch, match="pickle from before issue 23 is not loaded"):
        DeviceMonitor.restore(legacy, KEY)
    assert not _Bomb.ran


def test_an_envelope_cut_or_padded_is_a_state_error() -> None:
    saved = DeviceMonitor("pump-0001", "infusion_pump").dumps(KEY)
    for bad in (saved[:-1], saved + b"x", saved[:6], saved[:4] + b"\xff" * 4 + saved[8:]):
        with pytest.raises(StateError, match="^monitor state: "):
            DeviceMonitor.restore(bad, KEY)


def test_the_default_signer_is_one_key_per_process() -> None:
    monitor = DeviceMonitor("pump-0001", "infusion_pump")
    assert DeviceMonitor.loads(monitor.dumps()).device_id == "pump-0001"
    assert ephemeral_signer() is ephemeral_signer()
    with pytest.raises(StateSignatureInvalid):
        DeviceMonitor.loads(monitor.dumps(), KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        StateSigner(b"short")
    assert "key" not in repr(KEY).replace("<key>", "")


# --- the worker: a refused signature is logged and dead-lettered, the alerts kept -------------


class _Topic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[bytes, bytes]] = []

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


def test_the_worker_dead_letters_a_refused_signature_and_keeps_the_alerts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = DeviceState.new("pump-0001")
    for raw in raw_readings(30):
        state.on_telemetry(raw, now=NOW)
    assert state.monitor is not None
    (offline,) = state.monitor.on_connectivity(NOW, online=False)
    saved = state.models_bytes()  # signed with the process's key
    twin = state.twin.model_dump_json().encode()
    forged = _planted(saved, unpack(saved).models + b"\x00")
    models: dict[bytes, bytes | None] = {b"pump-0001": forged}
    cache = DeviceCache({b"pump-0001": twin}, models, every=10, interval_s=60.0)
    topics = {name: _Topic(f"twin.{name}") for name in ("commands", "dlq")}
    agents = DeviceAgents(
        topics, cache, desk=CommandDesk(topics), fleet=None, batch_max=1, batch_within_s=0.0
    )
    with caplog.at_level("ERROR", logger="twin_stream.worker.state_restore"):
        loaded = cache.load("pump-0001")
    refused = [r for r in caplog.records if r.name == "twin_stream.worker.state_restore"]
    assert [r.getMessage() for r in refused] == [
        "state of pump-0001 refused (models learned afresh, alert state kept): monitor state: "
        "the model state of pump-0001 is not signed with this worker's state key "
        "(TWIN_STATE__SIGNING_KEY): not loaded"
    ]
    assert loaded.monitor is not None
    assert [a.alert_id for a in loaded.monitor.open_alerts()] == [offline.alert_id]
    asyncio.run(agents.dead_letter_refusals("pump-0001", loaded, NOW))
    ((key, value),) = topics["dlq"].sent
    letter = orjson.loads(value)
    assert key == b"pump-0001"
    assert letter["reason"].endswith("[state_signature_invalid]")
    assert letter["mqtt_topic"] == "models"
    header = orjson.loads(base64.b64decode(letter["payload_base64"]))  # the header, no pickle
    assert header["device_id"] == "pump-0001" and set(header) >= {"sig", "models", "alerts"}
    asyncio.run(agents.dead_letter_refusals("pump-0001", loaded, NOW))
    assert len(topics["dlq"].sent) == 1  # once


def test_the_signing_key_setting_and_a_production_worker_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state_signing, "_signer", None)  # this process's key comes back after
    monkeypatch.setenv("TWIN_STATE__SIGNING_KEY", "short")
    with pytest.raises(ConfigError, match="TWIN_STATE__SIGNING_KEY"):
        load_settings()
    monkeypatch.setenv("TWIN_STATE__SIGNING_KEY", "k" * 32)
    key = load_settings().state.signing_key
    assert key is not None and "k" * 32 not in repr(load_settings())
    signer = state_signing.install(key)
    assert state_signing.signer() is signer
    monitor = DeviceMonitor("pump-0001", "infusion_pump")
    assert DeviceMonitor.loads(monitor.dumps(signer), StateSigner(b"k" * 32)).fw is None
    with pytest.raises(ConfigError, match="^TWIN_STATE__SIGNING_KEY is not set: a production"):
        state_signing.install(None, production=True)
