"""People's part of an alert's life (issue 13, item 3), in the pure domain: acknowledge, shelve
and return, re-notify an unacknowledged critical alert, a bounded history, the state kept with
the device's monitor; and what the sink writes of each event."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twin_stream.domain.alert_lifecycle import (
    HISTORY_PER_DEVICE,
    AlertAction,
    Refused,
    status,
)
from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.events import Alert, Contribution, Prediction
from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.sink.points import to_points

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=15)
WORN = [Contribution(metric="motor_current", value=0.7, baseline=0.25, deviation=12.0)]


def watched() -> AlertPolicy:
    """A pump's policy, past its learning day."""
    policy = AlertPolicy("pump-0001", "infusion_pump")
    policy.on_telemetry(T0 - timedelta(days=2), -1)
    return policy


def prediction(ttf: float, minutes: float = 0.0) -> Prediction:
    return Prediction(
        device_id="pump-0001",
        device_type="infusion_pump",
        metric="motor_current",
        ts=T0 + timedelta(minutes=minutes),
        value=0.7,
        limit=0.8,
        trend_per_h=0.03,
        time_to_failure_h=ttf,
        detector_version="t",
    )


def critical(policy: AlertPolicy | None = None) -> tuple[AlertPolicy, Alert]:
    """A policy with one open critical alert: a failure predicted in 3 h."""
    policy = policy or watched()
    policy.on_prediction(prediction(3.0), 1)
    (alert,) = policy.on_prediction(prediction(3.0, minutes=1), 2)
    assert (alert.state, alert.severity, alert.pages) == ("open", "critical", True)
    return policy, alert


def warning() -> tuple[AlertPolicy, Alert]:
    """A policy with one open warning: an anomaly heading for the motor current's limit."""
    policy = watched()
    events = [e for i in range(3) for e in policy.on_score(T0 + timedelta(seconds=i), i, 0.6, WORN)]
    (alert,) = events
    assert (alert.severity, alert.pages) == ("warning", True)
    return policy, alert


def action(alert: Alert, verb: str = "ack", at: datetime = T0, **fields: Any) -> AlertAction:
    return AlertAction(
        action_id=fields.pop("action_id", f"act-{verb}-{at.timestamp():.0f}"),
        alert_id=alert.alert_id,
        device_id=alert.device_id,
        action=verb,  # type: ignore[arg-type]
        by=fields.pop("by", "alice"),
        role="operator",
        at=at,
        **fields,
    )


def clock(policy: AlertPolicy, minutes: float) -> list[Alert]:
    return policy.on_clock(T0 + timedelta(minutes=minutes), EVERY)


def act(policy: AlertPolicy, a: AlertAction) -> Alert:
    event = policy.act(a, max_shelve_minutes=480)
    assert isinstance(event, Alert), event
    return event


def test_an_unacknowledged_critical_alert_is_renotified_every_n_minutes() -> None:
    policy, alert = critical()
    assert clock(policy, 0) == []  # first seen paging: the interval starts now
    assert clock(policy, 14.9) == []
    (first,) = clock(policy, 15)
    assert (first.alert_id, first.state, first.revision) == (alert.alert_id, "renotified", 1)
    assert first.pages and first.renotified == 1 and status(first) == "open"
    assert clock(policy, 29) == []
    (second,) = clock(policy, 30)
    assert (second.revision, second.renotified) == (2, 2)
    assert policy.open_alerts() == [second]  # the policy keeps the latest event


def test_acknowledging_stops_the_renotification_and_the_paging() -> None:
    policy, alert = critical()
    clock(policy, 0)
    acked = act(policy, action(alert, note="on my way", at=T0 + timedelta(minutes=5)))
    assert (acked.state, acked.revision, acked.pages, status(acked)) == (
        "acknowledged",
        1,
        False,
        "acknowledged",
    )
    assert acked.ack is not None
    assert (acked.ack.by, acked.ack.note, acked.ack.severity) == ("alice", "on my way", "critical")
    assert [clock(policy, m) for m in (15, 30, 600)] == [[], [], []]
    # Still open (and updated by the device's data), but it pages nobody.
    (update,) = policy.on_prediction(prediction(0.5, minutes=40), 3)
    assert update.state == "updated" and update.ack == acked.ack and not update.pages
    assert clock(policy, 700) == []
    # Acknowledged twice: a conflict, no event.
    again = policy.act(action(alert, by="bob"), max_shelve_minutes=480)
    assert isinstance(again, Refused) and again.kind == "conflict"
    assert "already acknowledged (by alice" in again.reason


def test_only_critical_alerts_are_renotified_and_none_when_it_is_off() -> None:
    policy, alert = warning()
    assert [policy.on_clock(T0 + timedelta(hours=h), EVERY) for h in range(10)] == [[]] * 10
    policy, alert = critical()
    assert [policy.on_clock(T0 + timedelta(hours=h), None) for h in range(10)] == [[]] * 10


def test_a_warning_acknowledged_pages_again_when_it_escalates_past_it() -> None:
    policy, alert = warning()
    acked = act(policy, action(alert))
    assert not acked.pages
    # The same signal now predicted to fail within 3 h: critical, worse than acknowledged.
    policy.on_prediction(prediction(3.0), 10)
    (worse,) = policy.on_prediction(prediction(3.0, minutes=1), 11)
    assert (worse.alert_id, worse.severity, worse.state) == (alert.alert_id, "critical", "updated")
    assert worse.ack is None and worse.pages and status(worse) == "open"


def test_a_shelved_alert_is_hidden_and_returns_paging_after_its_time() -> None:
    policy, alert = critical()
    clock(policy, 0)
    shelved = act(policy, action(alert, "shelve", at=T0 + timedelta(minutes=1), minutes=30))
    assert (shelved.state, status(shelved), shelved.pages) == ("shelved", "shelved", False)
    assert shelved.shelf is not None and shelved.shelf.until == T0 + timedelta(minutes=31)
    assert clock(policy, 16) == [] and clock(policy, 30.9) == []  # silent while shelved
    (back,) = clock(policy, 31)
    assert (back.state, back.revision, status(back), back.pages) == ("unshelved", 2, "open", True)
    assert back.shelf is None
    # Back and still unacknowledged: re-notified N minutes after it returned.
    assert clock(policy, 45) == []
    assert [e.state for e in clock(policy, 46)] == ["renotified"]


def test_an_acknowledged_alert_returns_from_the_shelf_without_paging() -> None:
    policy, alert = critical()
    act(policy, action(alert))
    act(policy, action(alert, "shelve", minutes=10, at=T0 + timedelta(minutes=1)))
    (back,) = clock(policy, 11)
    assert (back.state, status(back), back.pages) == ("unshelved", "acknowledged", False)


def test_shelving_is_bounded_and_resolved_alerts_take_no_action() -> None:
    policy, alert = critical()
    too_long = policy.act(action(alert, "shelve", minutes=481), max_shelve_minutes=480)
    assert isinstance(too_long, Refused) and too_long.kind == "invalid"
    assert "480" in too_long.reason
    once = action(alert, "shelve", minutes=30, action_id="shelve-once")
    act(policy, once)
    redelivered = policy.act(once, max_shelve_minutes=480)  # at-least-once delivery
    assert isinstance(redelivered, Refused) and redelivered.kind == "conflict"
    (resolved,) = policy.on_maintenance(T0 + timedelta(hours=1))
    assert resolved.state == "resolved" and status(resolved) == "resolved"
    for verb, extra in (("ack", {}), ("shelve", {"minutes": 5.0})):
        refused = policy.act(action(alert, verb, **extra), max_shelve_minutes=480)
        assert isinstance(refused, Refused) and refused.kind == "conflict", verb
        assert "is resolved" in refused.reason
    unknown = policy.act(
        action(alert.model_copy(update={"alert_id": "nope"})), max_shelve_minutes=480
    )
    assert isinstance(unknown, Refused) and unknown.kind == "unknown"


def test_resolved_alerts_stay_in_a_bounded_history_newest_first() -> None:
    policy = watched()
    ids = []
    for i in range(HISTORY_PER_DEVICE + 10):
        at = T0 + timedelta(minutes=2 * i)
        (opened,) = policy.on_connectivity(at, online=False)
        (resolved,) = policy.on_connectivity(at + timedelta(minutes=1), online=True)
        assert resolved.alert_id == opened.alert_id
        ids.append(opened.alert_id)
    (still,) = policy.on_connectivity(T0 + timedelta(days=1), online=False)
    alerts = policy.alerts()
    assert alerts[0] == still  # open ones first
    history = alerts[1:]
    assert len(history) == HISTORY_PER_DEVICE
    assert [a.alert_id for a in history] == ids[::-1][:HISTORY_PER_DEVICE]  # newest first
    assert all(status(a) == "resolved" for a in history)
    assert policy.find(ids[-1]) == history[0] and policy.find(ids[0]) is None
    # Saved with every checkpoint of the device: kept small (the policy's limit is 16 KiB).
    assert len(pickle.dumps(policy, protocol=5)) < 8 * 1024


def test_lifecycle_events_come_after_the_alerts_previous_event() -> None:
    # The device's clock runs ahead of the wall clock: the acknowledgement is "earlier". Its
    # event comes a millisecond after the alert's last (the sink's precision: its own point).
    policy, alert = critical()
    acked = act(policy, action(alert, at=alert.ts - timedelta(hours=1)))
    assert acked.ts == alert.ts + timedelta(milliseconds=1) and acked.ack is not None
    assert acked.ack.at == alert.ts - timedelta(hours=1)  # when it was done, as it was
    # ...and the device's next event is not before the acknowledgement either.
    policy2, alert2 = critical()
    acked2 = act(policy2, action(alert2, at=alert2.ts + timedelta(hours=1)))
    (resolved,) = policy2.on_maintenance(alert2.ts + timedelta(minutes=30))
    assert resolved.ts == acked2.ts and resolved.resolved_at == alert2.ts + timedelta(minutes=30)


def test_the_lifecycle_is_checkpointed_with_the_monitor() -> None:
    monitor = DeviceMonitor("pump-0001", "infusion_pump")
    _, alert = critical(monitor.policy)
    clock(monitor.policy, 0)
    act(monitor.policy, action(alert, note="seen"))
    restored = DeviceMonitor.loads(monitor.dumps())
    (kept,) = restored.open_alerts()
    assert kept.ack is not None and kept.ack.note == "seen" and kept.state == "acknowledged"
    assert restored.policy.paged == monitor.policy.paged
    assert restored.policy.on_clock(T0 + timedelta(hours=5), EVERY) == []


def test_a_policy_saved_before_the_lifecycle_restores_with_its_alerts_usable() -> None:
    policy, alert = critical()
    # What a pickle of the previous code holds: no history, no paging marks, and alerts
    # without the lifecycle's fields (pydantic restores only the fields saved).
    state = {k: v for k, v in policy.__dict__.items() if k not in ("resolved", "paged")}
    for slot in state["slots"].values():
        old = {k: v for k, v in slot.alert.__dict__.items() if k not in ("ack", "shelf")}
        old.pop("renotified")
        object.__setattr__(slot.alert, "__dict__", old)
    with pytest.raises(AttributeError):
        _ = next(iter(state["slots"].values())).alert.ack
    restored = pickle.loads(pickle.dumps(policy))  # a sanity check of the current format
    assert restored.open_alerts()[0].alert_id == alert.alert_id
    old_policy = AlertPolicy.__new__(AlertPolicy)
    old_policy.__setstate__(state)
    assert old_policy.version == AlertPolicy.version  # same counters, same version
    assert old_policy.history() == [] and old_policy.paged == {}
    (upgraded,) = old_policy.open_alerts()
    assert upgraded.ack is None and upgraded.renotified == 0 and upgraded.pages
    acked = act(old_policy, action(alert))
    assert acked.state == "acknowledged" and old_policy.on_clock(T0, EVERY) == []


def _points(alert: Alert) -> list[Any]:
    return to_points("alerts", alert.model_dump_json().encode())


def test_the_sink_writes_who_acted_and_a_page_point_only_for_events_that_page() -> None:
    policy, alert = critical()
    clock(policy, 0)
    (renotified,) = clock(policy, 15)
    acked = act(policy, action(alert, at=T0 + timedelta(minutes=16)))
    shelved = act(policy, action(alert, "shelve", minutes=5, at=T0 + timedelta(minutes=17)))
    by_event = {e.state: _points(e) for e in (alert, renotified, acked, shelved)}
    pages = {
        state: [p for p in points if p._name == "alert_page"] for state, points in by_event.items()
    }
    assert {state: len(p) for state, p in pages.items()} == {
        "open": 1,
        "renotified": 1,
        "acknowledged": 0,
        "shelved": 0,
    }
    (page,) = pages["renotified"]
    assert page._tags["event"] == "renotified" and page._tags["page"] == "1"
    assert page._tags["severity"] == "critical" and page._tags["alert"] == alert.alert_id
    assert page._tags["summary"].startswith("predicted failure: motor_current")
    main = {state: points[0]._fields for state, points in by_event.items()}
    assert main["open"]["pages"] == 1 and main["renotified"]["renotified"] == 1
    assert main["acknowledged"]["pages"] == 0 and main["acknowledged"]["ack_by"] == "alice"
    assert main["shelved"]["shelved_by"] == "alice" and main["shelved"]["open"] == 1
    assert main["shelved"]["shelved_until"].startswith("2026-01-01T12:22")
