"""``twin-stream dlq``: list, show and replay dead letters on a real Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from typer.testing import CliRunner

from twin_stream.bridge.routing import dead_letter, route
from twin_stream.cli import app
from twin_stream.dlq import Letter, LetterFilter, read_letters, replay
from twin_stream.domain.topics import kafka_topics
from twin_stream.kafka import ensure_topics

pytestmark = pytest.mark.services

NOW = datetime.now(UTC).replace(microsecond=0)


def _reading(device: str, seq: int, **metrics: object) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "device_id": device,
            "device_type": "infusion_pump",
            "seq": seq,
            "ts": (NOW - timedelta(seconds=1)).isoformat(),
            "fw": "1.0.0",
            "metrics": metrics or {"motor_current": 0.3},
        }
    )


def _fill(bootstrap: str, topics: dict[str, str]) -> None:
    """Six records on the dead-letter topic, as the bridge and the worker write them, and one
    that is no letter at all."""
    letters = [
        # the bridge: invalid JSON, and a topic that is no device's
        route("twin/v1/devices/pump-0001/telemetry", b"{not json", now=NOW, topics=topics),
        route("elsewhere/x", b"{}", now=NOW - timedelta(hours=2), topics=topics),
        # the worker: a valid reading whose processing failed (a bug, since fixed)
        dead_letter(
            "twin/v1/devices/pump-0001/telemetry",
            _reading("pump-0001", 7),
            "(worker): KeyError: 'motor_current' [processing_failed]",
            NOW,
            "pump-0001",
            topics,
        ),
        dead_letter(
            "twin/v1/devices/pump-0002/telemetry",
            _reading("pump-0002", 3),
            "(worker): KeyError: 'motor_current' [processing_failed]",
            NOW,
            "pump-0002",
            topics,
        ),
        # the worker: a command it could not process, named by its Kafka topic
        dead_letter(
            topics["commands"],
            b'{"command_id": "x"}',
            "kind: missing [missing]",
            NOW,
            "pump-0001",
            topics,
        ),
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for letter in letters:
            assert letter.kafka_topic == topics["dlq"]
            producer.send(letter.kafka_topic, key=letter.key, value=letter.value)
        producer.send(topics["dlq"], key=b"pump-0009", value=b"not a letter")
        producer.flush(30)
    finally:
        producer.close()


@pytest.fixture
def topics(kafka_bootstrap: str, unique: str) -> dict[str, str]:
    names = kafka_topics(f"dlq{unique}")
    ensure_topics(kafka_bootstrap, 3, {}, names)
    _fill(kafka_bootstrap, names)
    return names


def _all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[tuple[bytes | None, bytes]] = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                out += [(r.key, r.value) for r in records]
        return out
    finally:
        consumer.close()


def test_letters_are_read_and_filtered_and_a_record_that_is_none_is_shown(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    items = list(read_letters(kafka_bootstrap, {}, topic=topics["dlq"]))
    letters = [i for i in items if isinstance(i, Letter)]
    broken = [i for i in items if isinstance(i, tuple)]
    assert len(letters) == 5
    assert len(broken) == 1 and "validation error" in broken[0][2].lower()

    def ids(wanted: LetterFilter) -> set[str | None]:
        return {
            i.letter.device_id
            for i in read_letters(kafka_bootstrap, {}, wanted, topic=topics["dlq"])
            if isinstance(i, Letter)
        }

    assert ids(LetterFilter(device="pump-0002")) == {"pump-0002"}
    assert ids(LetterFilter(reason="processing_failed")) == {"pump-0001", "pump-0002"}
    assert ids(LetterFilter(reason="bad_topic")) == {None}
    # --since uses the letters' own time: the bad-topic letter is two hours old
    assert None not in ids(LetterFilter(since=NOW - timedelta(minutes=5)))


def test_replay_sends_fixed_letters_on_and_leaves_the_invalid_ones(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    letters = [
        i for i in read_letters(kafka_bootstrap, {}, topic=topics["dlq"]) if isinstance(i, Letter)
    ]
    dry = replay(kafka_bootstrap, {}, letters, dry_run=True, topics=topics)
    assert not any(o.sent for o in dry)
    assert _all(kafka_bootstrap, topics["telemetry"]) == []

    outcomes = replay(kafka_bootstrap, {}, letters, topics=topics)
    assert sum(o.sent for o in outcomes) == 3  # two readings and the command
    refused = sorted(o.reason or "" for o in outcomes if not o.sent)
    assert len(refused) == 2
    assert refused[0].startswith("(payload): Invalid JSON") and refused[0].endswith(
        "[json_invalid]"
    )
    assert refused[1] == "no topic of ours to replay to: elsewhere/x"
    telemetry = _all(kafka_bootstrap, topics["telemetry"])
    assert sorted((k, orjson.loads(v)["seq"]) for k, v in telemetry) == [
        (b"pump-0001", 7),
        (b"pump-0002", 3),
    ]
    commands = _all(kafka_bootstrap, topics["commands"])
    assert commands == [(b"pump-0001", b'{"command_id": "x"}')]
    # the letters stay on the dead-letter topic
    assert len(_all(kafka_bootstrap, topics["dlq"])) == 6


def test_the_cli_lists_shows_and_replays(
    kafka_bootstrap: str, topics: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_KAFKA__BOOTSTRAP", kafka_bootstrap)
    prefix = topics["dlq"].removesuffix(".dlq")
    runner = CliRunner()

    listed = runner.invoke(app, ["dlq", "list", "--json", "--topic-prefix", prefix])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 5
    failed = [r for r in rows if r["rule"] == "processing_failed"]
    assert {r["device_id"] for r in failed} == {"pump-0001", "pump-0002"}

    shown = runner.invoke(app, ["dlq", "show", failed[0]["id"], "--topic-prefix", prefix])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert orjson.loads(body["payload"])["device_id"] == failed[0]["device_id"]
    assert body["replay"] == f"would go to {topics['telemetry']}"

    missing = runner.invoke(app, ["dlq", "show", "9:999", "--topic-prefix", prefix])
    assert missing.exit_code == 2 and "no dead letter 9:999" in missing.output

    unfiltered = runner.invoke(app, ["dlq", "replay", "--topic-prefix", prefix])
    assert unfiltered.exit_code == 2 and "say which letters" in unfiltered.output

    replayed = runner.invoke(
        app,
        ["dlq", "replay", "--device", "pump-0002", "--json", "--topic-prefix", prefix],
    )
    assert replayed.exit_code == 0, replayed.output
    results = [json.loads(line) for line in replayed.stdout.splitlines() if line.startswith("{")]
    assert [(r["topic"], r["sent"]) for r in results] == [(topics["telemetry"], True)]
    assert [k for k, _ in _all(kafka_bootstrap, topics["telemetry"])] == [b"pump-0002"]
