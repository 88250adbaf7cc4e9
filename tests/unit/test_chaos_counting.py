"""The chaos run's counting, from lists: lost, duplicated, orphaned, and the recovery clock
(twin_stream/devtools/chaos/counting.py). No services: the run's own test is
tests/e2e/test_chaos.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from twin_stream.devtools.chaos.counting import (
    AlertEvent,
    alert_findings,
    by_window,
    condition_key,
    count_readings,
    counts_of,
    recovery_targets,
    recovery_time,
    unsent_in_window,
    window_readings,
)
from twin_stream.devtools.chaos.faults import DEFAULT_FAULTS, FAULTS, fault_names


def test_every_published_reading_scored_and_stored_once_counts_nothing_wrong() -> None:
    published = [("pump-0001", s) for s in range(100)] + [("vent-0002", s) for s in range(50)]
    once = Counter(published)
    count = count_readings(published, once, once, once)
    assert (count.published, count.scored, count.stored) == (150, 150, 150)
    assert (count.lost, count.duplicates, count.duplicate_scores, count.redelivered) == (0, 0, 0, 0)
    assert count.lost_readings == []


def test_a_reading_missing_anywhere_is_lost_once() -> None:
    published = [("a", 1), ("a", 2), ("a", 3), ("a", 4)]
    scored = Counter([("a", 1), ("a", 2), ("a", 4)])  # 3 never scored
    stored = Counter([("a", 1), ("a", 3), ("a", 4)])  # 2 never stored
    count = count_readings(published, scored, stored)
    assert count.lost == 2 and count.lost_unscored == 1 and count.lost_unstored == 1
    assert count.scored == 3 and count.stored == 3
    assert count.lost_readings == [("a", 2), ("a", 3)]
    # Neither scored nor stored: still one lost reading, not two.
    both = count_readings([("a", 9)], Counter(), Counter())
    assert (both.lost, both.lost_unscored, both.lost_unstored) == (1, 1, 1)


def test_a_lost_reading_with_no_record_on_kafka_was_lost_before_the_bridge_produced_it() -> None:
    published = [("a", 1), ("a", 2), ("a", 3)]
    scored = Counter([("a", 1)])
    stored = Counter([("a", 1), ("a", 2)])
    relayed = Counter([("a", 1), ("a", 2)])  # 3 never reached twin.telemetry; 2 did
    count = count_readings(published, scored, stored, relayed)
    assert (count.lost, count.lost_before_kafka) == (2, 1)
    # Without the records, where a reading was lost is not known: not counted either way.
    assert count_readings(published, scored, stored).lost_before_kafka == 0


def test_duplicate_points_scores_and_redeliveries_are_counted_apart() -> None:
    published = [("a", 1), ("a", 2)]
    scored = Counter({("a", 1): 3, ("a", 2): 1})  # scored three times after redelivery
    stored = Counter({("a", 1): 1, ("a", 2): 2})  # stored under two timestamps
    relayed = Counter({("a", 1): 2, ("a", 2): 1})  # the bridge forwarded it twice
    count = count_readings(published, scored, stored, relayed)
    assert (count.duplicates, count.duplicate_scores, count.redelivered) == (1, 2, 1)
    assert count.lost == 0


def test_readings_of_other_windows_or_devices_do_not_count() -> None:
    stored = Counter({("a", 1): 5, ("b", 1): 1})
    count = count_readings([("b", 1)], Counter({("b", 1): 1}), stored)
    assert count.duplicates == 0 and count.lost == 0


def test_windows_split_each_device_s_seqs_between_snapshots() -> None:
    seqs = {"a": [0, 1, 2, 3, 4, 5], "b": [10, 11, 12]}
    first = counts_of({"a": seqs["a"][:2], "b": seqs["b"][:1]})
    second = counts_of(seqs)
    baseline = window_readings(seqs, {}, first)
    fault = window_readings(seqs, first, second)
    assert baseline == [("a", 0), ("a", 1), ("b", 10)]
    assert fault == [("a", 2), ("a", 3), ("a", 4), ("a", 5), ("b", 11), ("b", 12)]
    assert sorted(baseline + fault) == sorted((d, s) for d, ss in seqs.items() for s in ss)


def test_unsent_readings_are_the_holes_in_a_device_s_seqs() -> None:
    seqs = {"a": [0, 1, 2, 7, 8, 9], "b": [0, 1, 2, 3]}
    assert unsent_in_window(seqs, {}, counts_of(seqs)) == 4
    # A hole counts in the window of the reading after it.
    assert unsent_in_window(seqs, {"a": 3, "b": 4}, counts_of(seqs)) == 4
    assert unsent_in_window(seqs, {"a": 4, "b": 4}, counts_of(seqs)) == 0


def test_recovery_waits_for_every_device_that_publishes_again() -> None:
    seqs = {"a": [1, 2, 3, 4, 5], "b": [1, 2, 3, 4], "silent": [1, 2]}
    at_end = {"a": 3, "b": 2, "silent": 2}
    targets = recovery_targets(seqs, at_end, counts_of(seqs))
    assert targets == {"a": 4, "b": 3}  # "silent" published nothing after the end
    end = 100.0
    scores = {
        "a": [(99.0, 3), (101.5, 4), (101.7, 5)],
        "b": [(99.5, 2), (112.0, 4)],  # 3 was skipped: a later reading counts too
    }
    assert recovery_time(end, targets, scores) == 12.0
    # One device still waiting: not recovered.
    assert recovery_time(end, targets, {"a": scores["a"]}) is None
    assert recovery_time(end, {}, scores) is None


def test_recovery_never_goes_before_the_end_of_the_fault() -> None:
    # A backlog scored in the same poll as the end: zero, not negative.
    assert recovery_time(50.0, {"a": 7}, {"a": [(49.0, 7)]}) == 0.0


def _alert(t: float, alert_id: str, state: str, **fields: Any) -> AlertEvent:
    alert = {"alert_id": alert_id, "state": state, "device_id": "pump-0001", "kind": "anomaly"}
    alert["details"] = {"root": "motor_current"}
    alert.update(fields)
    return AlertEvent(t, alert)


def test_an_alert_opened_again_under_its_own_id_is_a_duplicate() -> None:
    events = [
        _alert(1, "a1", "open", seq_last=10),
        _alert(2, "a1", "updated", seq_last=12),
        _alert(3, "a1", "open", seq_last=14),  # the same alert raised again, from other data
        _alert(4, "a1", "resolved", seq_last=15),
    ]
    found = alert_findings(events, open_now=set())
    assert [e.alert_id for e in found.repeated] == ["a1"]
    assert found.parallel == [] and found.orphaned == [] and found.redelivered == []
    assert [e.arrived for e in found.duplicates] == [3]
    assert len(found.opened) == 1


def test_an_alert_event_sent_again_as_it_was_is_a_redelivery_not_a_duplicate() -> None:
    # A worker that took the device over replayed its readings from the checkpoint before
    # the alert: the same events again, in the same order, then the rest.
    first = [_alert(1, "a1", "open", seq_last=10), _alert(2, "a1", "updated", seq_last=12)]
    again = [AlertEvent(3, dict(first[0].alert)), AlertEvent(4, dict(first[1].alert))]
    events = [*first, *again, _alert(5, "a1", "resolved", seq_last=15)]
    found = alert_findings(events, open_now=set())
    assert found.duplicates == [] and found.orphaned == []
    assert [e.arrived for e in found.redelivered] == [3, 4]
    assert len(found.opened) == 1


def test_a_second_alert_for_a_condition_still_open_is_a_duplicate() -> None:
    events = [
        _alert(1, "a1", "open"),
        _alert(2, "a2", "open", kind="predicted_failure"),  # same root signal: same fault
        _alert(3, "a3", "open", details={"root": "line_pressure"}),  # another signal: fine
        _alert(4, "a4", "open", device_id="pump-0009"),  # another device: fine
    ]
    found = alert_findings(events, open_now={"a1", "a2", "a3", "a4"})
    assert [e.alert_id for e in found.parallel] == ["a2"]
    assert found.repeated == [] and found.orphaned == []


def test_a_condition_may_alert_again_once_its_alert_resolved() -> None:
    events = [_alert(1, "a1", "open"), _alert(2, "a1", "resolved"), _alert(3, "a2", "open")]
    found = alert_findings(events, open_now={"a2"})
    assert found.duplicates == [] and found.orphaned == []
    assert [e.alert_id for e in found.opened] == ["a1", "a2"]


def test_an_alert_left_open_that_no_worker_holds_is_orphaned() -> None:
    events = [
        _alert(1, "a1", "open"),
        _alert(2, "a2", "open", device_id="vent-0002", kind="offline", details={}),
        _alert(3, "a2", "acknowledged", device_id="vent-0002", kind="offline", details={}),
        _alert(4, "a3", "open", device_id="mon-0003", kind="offline", details={}),
        _alert(5, "a3", "resolved", device_id="mon-0003", kind="offline", details={}),
    ]
    found = alert_findings(events, open_now={"a1"})
    # a2 is still open on the topic (acknowledged is open) but no worker has it any more.
    assert [e.alert_id for e in found.orphaned] == ["a2"]
    assert [e.arrived for e in found.orphaned] == [2]  # dated by its opening
    assert alert_findings(events, open_now={"a1", "a2"}).orphaned == []


@pytest.mark.parametrize(
    ("alert", "key"),
    [
        ({"device_id": "d", "kind": "offline", "details": {}}, ("d", "offline")),
        (
            {
                "device_id": "d",
                "kind": "data_quality",
                "details": {"metric": "m", "issue": "stuck"},
            },
            ("d", "data_quality:m:stuck"),
        ),
        ({"device_id": "d", "kind": "anomaly", "details": {"root": "m"}}, ("d", "fault:m")),
        (
            {"device_id": "d", "kind": "predicted_failure", "details": {"root": "m"}},
            ("d", "fault:m"),
        ),
    ],
)
def test_condition_keys_follow_the_alert_policy_s_slots(
    alert: dict[str, Any], key: tuple[str, str]
) -> None:
    assert condition_key(alert) == key


def test_events_fall_in_the_window_they_arrived_in() -> None:
    starts = [10.0, 20.0, 30.0]  # two fault windows, then the end of the run
    counts = by_window([5.0, 10.0, 19.9, 20.0, 31.0], starts)
    assert counts == Counter({-1: 1, 0: 2, 1: 1, 2: 1})


def test_fault_names_keep_the_run_s_order_and_refuse_unknown_ones() -> None:
    assert fault_names("tsdb-outage,worker-kill") == ["worker-kill", "tsdb-outage"]
    assert fault_names(None) == list(DEFAULT_FAULTS)
    assert list(DEFAULT_FAULTS) == [
        "bridge-kill",
        "worker-kill",
        "sink-kill",
        "kafka-outage",
        "mosquitto-restart",
        "tsdb-outage",
    ]
    # one more, run only when named: it needs a three-broker cluster
    assert list(FAULTS) == [*DEFAULT_FAULTS, "kafka-broker-kill"]
    assert FAULTS["kafka-broker-kill"].brokers == 3
    assert fault_names("kafka-broker-kill") == ["kafka-broker-kill"]
    with pytest.raises(ValueError, match="unknown fault.*broker-kill.*known: bridge-kill"):
        fault_names("broker-kill")
    with pytest.raises(ValueError, match="none given"):
        fault_names(" , ")
