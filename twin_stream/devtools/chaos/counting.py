"""Counting what a fault did, by device and seq: pure functions of lists and dicts, no I/O.

A chaos run keeps one steady fleet publishing through every fault; each fault owns a *window*
of the run, and the readings published in it (``(device_id, seq)``, from the fleet's record of
every published seq). What the platform made of them is counted against three sources read
back after the run: the scores on ``twin.scores`` (one per reading, by ``seq_last``), the
telemetry points in InfluxDB (one per reading, field ``seq``) and the telemetry records on
``twin.telemetry`` (more than one per reading when the bridge had it redelivered).

* **lost**: a reading published but never scored, or never stored;
* **duplicates**: a reading stored as more than one point (InfluxDB overwrites a point written
  again with the same series and time, so only a copy with another timestamp counts);
* **duplicate scores**: a reading scored more than once (at-least-once redelivery to a worker
  may legitimately score a reading again; counted apart, not hidden);
* **duplicate alerts**: an alert opened again under the id it already had (with anything
  different from its first open), or opened while another alert for the same condition of the
  same device was still open. An alert event sent again exactly as it was (a worker that took
  a device over replays its readings from its checkpoint and makes the same events again) is
  counted apart, as a redelivered alert event, as a redelivered reading is;
* **orphaned alerts**: alerts whose last event on ``twin.alerts`` left them open but that no
  worker holds open any more: nobody will ever resolve them;
* **recovery**: from the end of a fault until every device that publishes again has a reading
  published after the end scored.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AlertEvent",
    "AlertFindings",
    "ReadingCount",
    "alert_findings",
    "by_window",
    "condition_key",
    "count_readings",
    "counts_of",
    "first_scored",
    "recovery_targets",
    "recovery_time",
    "unsent_in_window",
    "window_readings",
]

Reading = tuple[str, int]  # (device_id, seq)


def counts_of(seqs: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """How many seqs each device has published so far: a snapshot that marks a moment.

    >>> counts_of({"a": [0, 1, 2], "b": []})
    {'a': 3, 'b': 0}
    """
    return {device: len(published) for device, published in seqs.items()}


def window_readings(
    seqs: Mapping[str, Sequence[int]], start: Mapping[str, int], end: Mapping[str, int]
) -> list[Reading]:
    """The readings published between two snapshots (:func:`counts_of`): each device's seqs
    from its count at ``start`` to its count at ``end``.

    >>> window_readings({"a": [0, 1, 2, 3], "b": [5, 6]}, {"a": 1}, {"a": 3, "b": 1})
    [('a', 1), ('a', 2), ('b', 5)]
    """
    readings: list[Reading] = []
    for device, published in seqs.items():
        first, last = start.get(device, 0), end.get(device, len(published))
        readings.extend((device, seq) for seq in published[first:last])
    return readings


def unsent_in_window(
    seqs: Mapping[str, Sequence[int]], start: Mapping[str, int], end: Mapping[str, int]
) -> int:
    """Readings a device made but could not publish in the window (not connected to the
    broker: the simulated device moves its seq on), counted by the holes in its seqs.

    >>> unsent_in_window({"a": [0, 1, 4, 5, 9]}, {"a": 2}, {"a": 5})
    5
    """
    holes = 0
    for device, published in seqs.items():
        first, last = start.get(device, 0), end.get(device, len(published))
        for i in range(max(1, first), last):
            holes += max(0, published[i] - published[i - 1] - 1)
    return holes


@dataclass(frozen=True)
class ReadingCount:
    """One window's readings: how many were published, scored and stored, and what went wrong.

    ``lost`` counts each reading once, whether it was not scored, not stored or neither;
    ``lost_before_kafka`` those of them that never reached ``twin.telemetry`` (lost between
    the device and the bridge's producer); ``lost_readings`` names up to a few, for the logs."""

    published: int
    scored: int
    stored: int
    lost: int
    lost_unscored: int
    lost_unstored: int
    lost_before_kafka: int
    duplicates: int
    duplicate_scores: int
    redelivered: int
    lost_readings: list[Reading] = field(default_factory=list)


def count_readings(
    published: Iterable[Reading],
    scored: Mapping[Reading, int],
    stored: Mapping[Reading, int],
    relayed: Mapping[Reading, int] | None = None,
    *,
    examples: int = 5,
) -> ReadingCount:
    """Count one window's ``published`` readings against the scores (``scored``: how many
    scores each reading got), the points (``stored``: how many points each has) and the
    telemetry records on Kafka (``relayed``: how many records each has).

    >>> pub = [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    >>> c = count_readings(pub, Counter({("a", 1): 1, ("a", 2): 2, ("b", 1): 1}),
    ...                    Counter({("a", 1): 1, ("a", 2): 1, ("a", 3): 1, ("b", 1): 3}),
    ...                    Counter({("a", 1): 2, ("a", 2): 1}))
    >>> c.published, c.scored, c.stored, c.lost, c.lost_unscored, c.lost_unstored
    (4, 3, 4, 1, 1, 0)
    >>> c.lost_before_kafka
    1
    >>> c.duplicates, c.duplicate_scores, c.redelivered, c.lost_readings
    (2, 1, 1, [('a', 3)])
    """
    known = relayed is not None  # without the records, nothing is said of where it was lost
    relayed = relayed or {}
    n = n_scored = n_stored = lost = unscored = unstored = before_kafka = 0
    duplicates = duplicate_scores = redelivered = 0
    lost_readings: list[Reading] = []
    for reading in published:
        n += 1
        scores, points = scored.get(reading, 0), stored.get(reading, 0)
        n_scored += scores > 0
        n_stored += points > 0
        unscored += scores == 0
        unstored += points == 0
        records = relayed.get(reading, 0)
        if scores == 0 or points == 0:
            lost += 1
            before_kafka += known and records == 0
            if len(lost_readings) < examples:
                lost_readings.append(reading)
        duplicates += max(0, points - 1)
        duplicate_scores += max(0, scores - 1)
        redelivered += max(0, records - 1)
    return ReadingCount(
        published=n,
        scored=n_scored,
        stored=n_stored,
        lost=lost,
        lost_unscored=unscored,
        lost_unstored=unstored,
        lost_before_kafka=before_kafka,
        duplicates=duplicates,
        duplicate_scores=duplicate_scores,
        redelivered=redelivered,
        lost_readings=lost_readings,
    )


# --- recovery ----------------------------------------------------------------------------------


def recovery_targets(
    seqs: Mapping[str, Sequence[int]], at_end: Mapping[str, int], at_grace: Mapping[str, int]
) -> dict[str, int]:
    """Per device, the first seq it published after a fault ended (``at_end``, a snapshot),
    for the devices that published again within the grace period after it (``at_grace``): a
    device that was silent then (a simulated device offline on its own) is not waited for.

    >>> recovery_targets({"a": [1, 2, 3, 4], "b": [7, 8]}, {"a": 2, "b": 2}, {"a": 4, "b": 2})
    {'a': 3}
    """
    return {
        device: published[at_end.get(device, 0)]
        for device, published in seqs.items()
        if at_grace.get(device, 0) > at_end.get(device, 0)
    }


def first_scored(scores: Sequence[tuple[float, int]], target: int) -> float | None:
    """When the first score of ``target`` or a later seq arrived (``scores``: one device's
    ``(arrival, seq_last)`` in arrival order), or None.

    >>> first_scored([(1.0, 4), (2.0, 9), (3.0, 6)], 6)
    2.0
    >>> first_scored([(1.0, 4)], 6) is None
    True
    """
    for arrived, seq in scores:
        if seq >= target:
            return arrived
    return None


def recovery_time(
    end: float, targets: Mapping[str, int], scores: Mapping[str, Sequence[tuple[float, int]]]
) -> float | None:
    """Seconds from ``end`` until every device in ``targets`` had its first reading published
    after the end (or a later one) scored; None while one has not (or with no target at all).

    >>> scores = {"a": [(9.0, 2), (10.5, 3)], "b": [(11.0, 8), (14.25, 9)]}
    >>> recovery_time(10.0, {"a": 3, "b": 9}, scores)
    4.25
    >>> recovery_time(10.0, {"a": 3, "b": 10}, scores) is None
    True
    """
    if not targets:
        return None
    latest = end
    for device, target in targets.items():
        arrived = first_scored(scores.get(device, ()), target)
        if arrived is None:
            return None
        latest = max(latest, arrived)
    return round(latest - end, 2)


# --- alerts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertEvent:
    """One record of ``twin.alerts`` (an :class:`~twin_stream.domain.events.Alert` as JSON)
    and when the run's reader received it (unix seconds)."""

    arrived: float
    alert: Mapping[str, Any]

    @property
    def alert_id(self) -> str:
        return str(self.alert["alert_id"])

    @property
    def state(self) -> str:
        return str(self.alert["state"])


def condition_key(alert: Mapping[str, Any]) -> tuple[str, str]:
    """The condition an alert stands for, as the alert policy keys it (its *slot*): a device
    is offline once; a data-quality issue is one per (signal, issue); an anomaly and a predicted
    failure of the same root signal are one fault (``details["root"]``).

    >>> condition_key({"device_id": "p", "kind": "offline", "details": {}})
    ('p', 'offline')
    >>> condition_key({"device_id": "p", "kind": "data_quality",
    ...                "details": {"metric": "flow_rate", "issue": "stuck"}})
    ('p', 'data_quality:flow_rate:stuck')
    >>> condition_key({"device_id": "p", "kind": "predicted_failure",
    ...                "details": {"root": "motor_current"}})
    ('p', 'fault:motor_current')
    """
    device, kind = str(alert["device_id"]), str(alert["kind"])
    details = alert.get("details") or {}
    if kind == "offline":
        return device, "offline"
    if kind == "data_quality":
        return device, f"data_quality:{details.get('metric')}:{details.get('issue')}"
    return device, f"fault:{details.get('root', '')}"


@dataclass(frozen=True)
class AlertFindings:
    """What the alert events of a run show: the ``open`` events that duplicate an alert
    (``repeated``: its own id opened again; ``parallel``: another alert of the same condition
    still open), and the alerts left open that no worker holds (``orphaned``, their ``open``
    events). ``opened`` is every first ``open`` event."""

    opened: list[AlertEvent]
    repeated: list[AlertEvent]
    parallel: list[AlertEvent]
    orphaned: list[AlertEvent]
    #: Events sent again exactly as before (same id, revision and content): the at-least-once
    #: redelivery of one event, which every reader recognises (the sink writes the same point
    #: again), not a second alert.
    redelivered: list[AlertEvent] = field(default_factory=list)

    @property
    def duplicates(self) -> list[AlertEvent]:
        return sorted([*self.repeated, *self.parallel], key=lambda e: e.arrived)


def alert_findings(events: Iterable[AlertEvent], open_now: Iterable[str]) -> AlertFindings:
    """Go through a run's alert events in the order they were read (one device's events keep
    their order: one partition) and find duplicated and orphaned alerts. ``open_now`` is the
    ids of the alerts the workers hold open at the end (the twin API's ``GET /alerts``).

    >>> def ev(t, i, state, device="p", kind="offline", seq=1):
    ...     return AlertEvent(t, {"alert_id": i, "state": state, "device_id": device,
    ...                           "kind": kind, "details": {}, "seq_last": seq})
    >>> events = [ev(1, "x", "open"), ev(2, "x", "open", seq=2), ev(3, "y", "open"),
    ...           ev(4, "x", "resolved"), ev(5, "z", "open", device="q"),
    ...           ev(6, "w", "open", device="r")]
    >>> found = alert_findings(events, open_now={"y", "w"})
    >>> [e.alert_id for e in found.opened], [e.alert_id for e in found.repeated]
    (['x', 'y', 'z', 'w'], ['x'])
    >>> [e.alert_id for e in found.parallel], [e.alert_id for e in found.orphaned]
    (['y'], ['z'])

    An event received again exactly as it was (a replay after a restart) is a redelivery:

    >>> again = alert_findings([ev(1, "x", "open"), ev(2, "x", "open")], open_now={"x"})
    >>> again.repeated, [e.alert_id for e in again.redelivered]
    ([], ['x'])
    """
    opened: list[AlertEvent] = []
    repeated: list[AlertEvent] = []
    parallel: list[AlertEvent] = []
    first_open: dict[str, AlertEvent] = {}
    key_of: dict[str, tuple[str, str]] = {}
    open_by_key: dict[tuple[str, str], set[str]] = {}
    last_state: dict[str, str] = {}
    seen: set[str] = set()
    redelivered: list[AlertEvent] = []
    for event in events:
        alert_id, state = event.alert_id, event.state
        body = json.dumps(dict(event.alert), sort_keys=True, default=str)
        if body in seen:
            redelivered.append(event)
            continue
        seen.add(body)
        last_state[alert_id] = state
        if state == "open":
            key = key_of.setdefault(alert_id, condition_key(event.alert))
            if alert_id in first_open:
                repeated.append(event)
            else:
                first_open[alert_id] = event
                opened.append(event)
                if open_by_key.get(key):
                    parallel.append(event)
            open_by_key.setdefault(key, set()).add(alert_id)
        elif state == "resolved" and alert_id in key_of:
            open_by_key.get(key_of[alert_id], set()).discard(alert_id)
    holding = set(open_now)
    orphaned = [
        first_open[alert_id]
        for alert_id, state in last_state.items()
        if state != "resolved" and alert_id in first_open and alert_id not in holding
    ]
    return AlertFindings(opened, repeated, parallel, orphaned, redelivered)


def by_window(times: Iterable[float], starts: Sequence[float]) -> Counter[int]:
    """How many of ``times`` fall in each window (window ``i`` from ``starts[i]`` to the next
    start; before the first: window -1).

    >>> sorted(by_window([0.5, 1.0, 2.5, 9.0], [1.0, 2.0]).items())
    [(-1, 1), (0, 1), (1, 2)]
    """
    counts: Counter[int] = Counter()
    for t in times:
        index = -1
        for i, start in enumerate(starts):
            if t >= start:
                index = i
        counts[index] += 1
    return counts
