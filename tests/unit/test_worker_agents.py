"""The worker's agents without a broker: Faust's ``agent.test_context()`` on a ``memory://``
store, every record the agents produce captured instead of sent.

A reading updates the twin table and produces a score and the twin's view; a record the worker
cannot process goes to the dead-letter topic in the bridge's format, with the reason; a dead
letter counts in the device's ``invalid`` counter.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson

from tests.unit.conftest import Sent, put
from twin_stream.bridge.routing import dead_letter
from twin_stream.sink.points import to_points
from twin_stream.worker.app import WorkerConfig, create_app

RAW = (
    b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":1,'
    b'"ts":"2026-11-24T12:00:00Z","fw":"1.0.0","metrics":{"motor_current":0.3}}'
)
KEY = b"pump-0001"


def _of(sent: Sent, topic: str) -> list[bytes]:
    return [value for name, _, value in sent if name == topic]


def test_a_reading_updates_the_twin_table_and_produces_a_score_and_the_twin(
    app: Any, sent: Sent
) -> None:
    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, RAW)))
    assert len(_of(sent, "twin.scores")) == 1
    (view,) = [orjson.loads(v) for v in _of(sent, "twin.twins")]
    assert view["device_id"] == "pump-0001" and view["quality"]["accepted"] == 1
    twin = orjson.loads(app.tables["twins"][KEY])
    assert twin["last_seq"] == 1
    assert _of(sent, "twin.dlq") == []


def test_an_unprocessable_reading_is_dead_lettered_with_its_reason(app: Any, sent: Sent) -> None:
    bad = b'{"device_id":"pump-0001","seq":2}'  # no device_type: no schema to parse it with
    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, RAW), (KEY, bad)))
    (letter,) = [(k, orjson.loads(v)) for name, k, v in sent if name == "twin.dlq"]
    key, body = letter
    assert key == KEY
    # The bridge's dead-letter format, field for field.
    bridge_format = orjson.loads(dead_letter("t", b"", "r", _now(), "pump-0001").value)
    assert body.keys() == bridge_format.keys()
    assert body["device_id"] == "pump-0001"
    assert body["mqtt_topic"] == "twin/v1/devices/pump-0001/telemetry"
    assert "discriminator 'device_type'" in body["reason"]
    assert body["reason"].endswith("[union_tag_not_found]")  # the rule, where the sink reads it
    assert base64.b64decode(body["payload_base64"]) == bad
    assert len(_of(sent, "twin.scores")) == 1  # only the good reading was scored


def test_an_invalid_status_is_dead_lettered_with_the_field_and_the_rule(
    app: Any, sent: Sent
) -> None:
    bad = b'{"v":1,"device_id":"pump-0001","state":"sleepy","ts":"2026-11-24T12:00:00Z"}'
    asyncio.run(put(app.agents["twin-worker.status"], (KEY, bad)))
    (body,) = [orjson.loads(v) for v in _of(sent, "twin.dlq")]
    assert body["mqtt_topic"] == "twin/v1/devices/pump-0001/status"
    assert body["reason"].startswith("state: Input should be 'online' or 'offline'")
    # The sink finds the rule in it (the dead_letter measurement's "rule" tag).
    (point,) = to_points("dlq", orjson.dumps(body))
    assert point._tags["rule"] == "literal_error"


def test_a_bad_command_names_its_kafka_topic(app: Any, sent: Sent) -> None:
    asyncio.run(put(app.agents["twin-worker.commands"], (KEY, b"{}")))
    (body,) = [orjson.loads(v) for v in _of(sent, "twin.dlq")]
    assert body["mqtt_topic"] == "twin.commands"  # a command never came over MQTT


def test_a_dead_letter_counts_in_the_twins_invalid_counter(app: Any, sent: Sent) -> None:
    letter = dead_letter("twin/v1/devices/pump-0001/telemetry", b"{", "bad", _now(), "pump-0001")
    asyncio.run(put(app.agents["twin-worker.dlq"], (KEY, letter.value)))
    twin = orjson.loads(app.tables["twins"][KEY])
    assert twin["quality"]["invalid"] == 1
    (view,) = [orjson.loads(v) for v in _of(sent, "twin.twins")]
    assert view["quality"]["invalid"] == 1


def _reading(device: str, seq: int, partition_key: bytes | None = None) -> tuple[bytes, bytes]:
    device_type = {"pump": "infusion_pump", "vent": "ventilator"}[device.split("-")[0]]
    metrics = {"infusion_pump": {"motor_current": 0.3}, "ventilator": {"tidal_volume": 500.0}}[
        device_type
    ]
    value = orjson.dumps(
        {
            "v": 1,
            "device_id": device,
            "device_type": device_type,
            "seq": seq,
            "ts": f"2026-11-24T12:00:{seq:02d}Z",
            "fw": "1.0.0",
            "metrics": metrics,
        }
    )
    return (partition_key or device.encode(), value)


async def _put_batch(agent: Any, *records: tuple[bytes, bytes], partitions: list[int]) -> None:
    """Put records without waiting for each, so that they land in one micro-batch."""
    async with agent.test_context() as test_agent:
        await asyncio.gather(
            *(
                test_agent.put(key=key, value=value, partition=partition)
                for (key, value), partition in zip(records, partitions, strict=True)
            )
        )


def test_a_micro_batch_sends_one_scores_record_per_device_with_every_score(
    tmp_path: Path, sent: Sent
) -> None:
    # A batch waits up to half a second for more events: the four puts land in one batch.
    app = create_app(
        WorkerConfig(
            bootstrap="127.0.0.1:9",
            data_dir=tmp_path,
            web_port=6066,
            store="memory://",
            batch_within_s=0.5,
        )
    )
    records = [_reading("pump-0001", s) for s in (1, 2, 3)] + [_reading("vent-0002", 1)]
    asyncio.run(_put_batch(app.agents["twin-worker.telemetry"], *records, partitions=[0, 0, 0, 1]))
    scores: dict[bytes, list[Any]] = {}
    for name, key, value in sent:
        if name == "twin.scores":
            scores.setdefault(key, []).extend(orjson.loads(value))
    per_device = {key: [s["seq_last"] for s in batch] for key, batch in scores.items()}
    # Every reading is scored, in order, and traceable to its reading and detector.
    assert sorted(s for seqs in per_device.values() for s in seqs) == [1, 1, 2, 3]
    assert per_device[b"pump-0001"] == sorted(per_device[b"pump-0001"])
    assert all(s["detector_version"] for batch in scores.values() for s in batch)
    records_out = sorted(key for name, key, _ in sent if name == "twin.scores")
    assert records_out == [b"pump-0001", b"vent-0002"]  # one record per device and batch
    # One twin view per device and batch, with the batch's last reading.
    views = [orjson.loads(v) for v in _of(sent, "twin.twins")]
    assert sorted(v["device_id"] for v in views) == ["pump-0001", "vent-0002"]
    assert max(v["last_seq"] for v in views if v["device_id"] == "pump-0001") == 3


def test_a_batch_writes_each_devices_table_changelog_to_its_own_partition(
    app: Any, sent: Sent
) -> None:
    from faust.tables.base import Collection

    original = Collection.partition_for_key
    written: list[tuple[str, bytes, int | None]] = []

    def recording(table: Any, key: bytes) -> int | None:
        partition = original(table, key)
        written.append((table.name, key, partition))
        return partition

    records = [_reading("pump-0001", 1), _reading("vent-0002", 1)]
    with mock.patch.object(Collection, "partition_for_key", recording):
        asyncio.run(_put_batch(app.agents["twin-worker.telemetry"], *records, partitions=[2, 5]))
    twins = sorted((key, partition) for name, key, partition in written if name == "twins")
    assert twins == [(b"pump-0001", 2), (b"vent-0002", 5)]


def _now() -> datetime:
    return datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_a_checkpoint_that_fails_does_not_stop_the_scoring(
    app: Any, sent: Sent, caplog: Any
) -> None:
    """A table write that fails (Faust's metadata of a changelog missing just after Kafka came
    back raised PartitionsMismatch at every write, and the agent crashed in a loop): the
    reading is still scored, and the state is saved at the device's next event."""
    from twin_stream.worker.checkpoint import DeviceCache

    # The log is rate-limited per cache: this app's cache has logged no failure yet.
    second = RAW.replace(b'"seq":1', b'"seq":2')
    real_save = DeviceCache.save
    failures = [RuntimeError("changelog has 0 partitions")]

    def flaky_save(self: Any, *args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        real_save(self, *args, **kwargs)

    with mock.patch.object(DeviceCache, "save", flaky_save):
        # Two batches: a device is checkpointed once per batch, after its outputs are sent.
        asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, RAW)))
        asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, second)))
    scored = [s["seq_last"] for v in _of(sent, "twin.scores") for s in orjson.loads(v)]
    assert scored == [1, 2]
    assert orjson.loads(app.tables["twins"][KEY])["last_seq"] == 2  # saved at the next event
    assert "checkpoint of pump-0001 failed" in caplog.text
    assert _of(sent, "twin.dlq") == []


def test_a_will_that_opens_an_alert_checkpoints_the_models_with_a_replay_point(
    app: Any, sent: Sent
) -> None:
    """An alert is saved with the state that opened it (a worker that takes the device over
    knows it), and the device's replay point moves past the readings the models hold."""
    from twin_stream.worker.replay import ReplayPoint

    asyncio.run(put(app.agents["twin-worker.telemetry"], (KEY, RAW)))
    anchor = ReplayPoint.decode(app.tables["replay"][KEY])  # a new device: its first reading
    assert anchor.last_seq is None
    assert KEY not in app.tables["models"]  # not checkpointed at its first reading
    will = b'{"v":1,"device_id":"pump-0001","state":"offline","reason":"will","fw":"1.0.0",'
    asyncio.run(
        put(app.agents["twin-worker.status"], (KEY, will + b'"ts":"2026-11-24T12:00:00Z"}'))
    )
    (alert,) = [orjson.loads(v) for v in _of(sent, "twin.alerts")]
    assert alert["kind"] == "offline" and alert["state"] == "open"
    assert KEY in app.tables["models"]
    point = ReplayPoint.decode(app.tables["replay"][KEY])
    assert point.offset == anchor.offset + 1 and point.last_seq == 1
