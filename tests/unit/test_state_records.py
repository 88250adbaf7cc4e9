"""The alert state's record (issue 23, item 5): validated, versioned, migrated, never executed."""

from __future__ import annotations

import base64
import dataclasses
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from twin_stream.domain.alerting import POLICY_VERSION, AlertPolicy, AlertPolicyParams
from twin_stream.domain.events import Contribution
from twin_stream.domain.state_records import (
    ALERT_SCHEMA_VERSION,
    MIGRATIONS,
    decode_record,
    encode_record,
    inflate,
    migrate,
    policy_from_record,
)
from twin_stream.errors import StateError, StateVersionMismatch

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WORN = [Contribution(metric="motor_current", value=0.7, baseline=0.25, deviation=12.0)]


def busy_policy() -> AlertPolicy:
    """A pump's policy with an open anomaly, a resolved offline alert in its history and a
    quiet period: every kind of field the record holds."""
    policy = AlertPolicy("pump-0001", "infusion_pump")
    policy.on_telemetry(T0 - timedelta(days=2), 0)
    policy.on_connectivity(T0, online=False)
    policy.on_connectivity(T0 + timedelta(minutes=1), online=True)
    for i in range(1, 4):
        policy.on_score(T0 + timedelta(minutes=2, seconds=i), i, 0.6, WORN)
    policy.quiet = 5
    return policy


def _as_json(policy: AlertPolicy) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(encode_record(policy))
    return parsed


def test_a_policy_round_trips_through_its_record() -> None:
    policy = busy_policy()
    restored = policy_from_record(decode_record(encode_record(policy)))
    assert restored.open_alerts() == policy.open_alerts() and len(restored.open_alerts()) == 1
    assert restored.history() == policy.history() and len(restored.history()) == 1
    assert (restored.quiet, restored.last_seq, restored.activations) == (5, 3, policy.activations)
    assert restored.conditions.keys() == policy.conditions.keys()
    anomaly = restored.conditions["anomaly"]
    assert (anomaly.active, anomaly.streak) == (True, policy.conditions["anomaly"].streak)
    assert encode_record(restored) == encode_record(policy)  # nothing lost, nothing added
    # the same next events
    a = policy.on_score(T0 + timedelta(minutes=3), 4, 0.95, WORN)
    b = restored.on_score(T0 + timedelta(minutes=3), 4, 0.95, WORN)
    assert a == b


def test_a_v1_record_is_migrated_and_its_alerts_kept() -> None:
    policy = busy_policy()
    v1 = _as_json(policy)
    v1["schema_version"] = 1
    v1["params"] = dataclasses.asdict(AlertPolicyParams())  # v1 held the thresholds
    with pytest.raises(StateError, match="params: Extra inputs are not permitted"):
        decode_record(orjson.dumps({**v1, "schema_version": 2}))  # v2 has no params
    assert "params" not in migrate(dict(v1)) and 1 in MIGRATIONS
    restored = policy_from_record(decode_record(orjson.dumps(v1)))
    assert restored.open_alerts() == policy.open_alerts()
    assert restored.params == AlertPolicyParams()  # this code's thresholds


def test_an_unknown_or_missing_version_is_refused() -> None:
    record = _as_json(busy_policy())
    with pytest.raises(StateVersionMismatch, match="schema version 3 is newer than this code's 2"):
        decode_record(orjson.dumps({**record, "schema_version": ALERT_SCHEMA_VERSION + 1}))
    for bad in (None, "2", 0, True):
        with pytest.raises(StateError, match="no schema version"):
            decode_record(orjson.dumps({**record, "schema_version": bad}))
    with pytest.raises(StateVersionMismatch, match=f"policy ts-policy/0, this is {POLICY_VERSION}"):
        decode_record(orjson.dumps({**record, "policy_version": "ts-policy/0"}))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r.update(quiet=-1), "quiet: Input should be greater than or equal to 0"),
        (lambda r: r.update(extra=1), "extra: Extra inputs are not permitted"),
        (lambda r: r["conditions"]["anomaly"].update(kind="exec"), "conditions.anomaly.kind"),
        (lambda r: r["slots"]["fault:motor_current"]["alert"].pop("alert_id"), "alert.alert_id"),
        (lambda r: r.update(resolved="not base64!"), "resolved: Value error"),
        (
            lambda r: r.update(resolved=base64.b64encode(zlib.compress(b'[{"x": 1}]')).decode()),
            "the history of resolved alerts does not read",
        ),
        (lambda r: r.update(paged={"a": [1, "then"]}), "paged.a.1"),
    ],
)
def test_a_record_that_does_not_validate_is_a_state_error_naming_the_field(
    change: Any, where: str
) -> None:
    record = _as_json(busy_policy())
    change(record)
    with pytest.raises(StateError, match="^alert state: ") as raised:
        decode_record(orjson.dumps(record))
    assert where in str(raised.value)


def test_what_is_not_a_record_is_a_state_error() -> None:
    for bad in (b"", b"[1]", b"\x80pickle", b'"text"'):
        with pytest.raises(StateError, match="^alert state: "):
            decode_record(bad)


def test_a_compressed_bomb_is_refused_before_it_fills_the_worker() -> None:
    bomb = zlib.compress(b"0" * (9 << 20), 9)  # ~9 KiB that inflate to 9 MiB
    with pytest.raises(StateError, match="inflates past"):
        inflate(bomb)
    with pytest.raises(StateError, match="cut short"):
        inflate(zlib.compress(b"x" * 1000)[:-4])
    record = _as_json(busy_policy())
    record["resolved"] = base64.b64encode(bomb).decode()
    with pytest.raises(StateError, match="inflates past"):
        decode_record(orjson.dumps(record))
