"""Counting what a benchmark run produced: records on a Kafka topic, points in InfluxDB."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from twin_stream.domain.batches import decode_scores
from twin_stream.errors import KafkaError

__all__ = [
    "ScoredReading",
    "count_points",
    "count_records",
    "output_span",
    "latency_split",
    "percentile",
    "reader_at_end",
    "scores_in",
    "wait_for_consumed",
]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``.

    >>> percentile([3.0, 1.0, 2.0, 4.0], 0.5), percentile([1.0, 2.0], 0.99)
    (3.0, 2.0)
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True)
class ScoredReading:
    """One reading's score as the e2e collector saw it: the device's timestamp and when the
    score arrived (seconds since the epoch)."""

    device_id: str
    seq: int
    ts: float
    arrived: float


def latency_split(
    scored: list[ScoredReading], bridged: Mapping[tuple[str, int], float]
) -> dict[str, float | None]:
    """Where the latency goes: p50/p99 (ms) of the whole path; of its two parts, device to
    bridge (the telemetry record's timestamp, when the bridge received the reading) and
    bridge to score; and p99 of each device's first scored reading.

    >>> s = [ScoredReading("a", 1, 0.0, 1.0), ScoredReading("a", 2, 1.0, 1.1),
    ...      ScoredReading("b", 1, 0.0, 0.5)]
    >>> split = latency_split(s, {("a", 1): 0.01, ("a", 2): 1.01, ("b", 1): 0.3})
    >>> split["p99_ms"], split["p99_to_bridge_ms"], split["p99_first_reading_ms"]
    (1000.0, 300.0, 1000.0)
    """
    if not scored:
        return dict.fromkeys(_SPLIT_KEYS)
    total = [(s.arrived - s.ts) * 1000 for s in scored]
    to_bridge, after_bridge = [], []
    for s in scored:
        at = bridged.get((s.device_id, s.seq))
        if at is not None:
            to_bridge.append((at - s.ts) * 1000)
            after_bridge.append((s.arrived - at) * 1000)
    first: dict[str, ScoredReading] = {}
    for s in scored:
        seen = first.get(s.device_id)
        if seen is None or s.seq < seen.seq:
            first[s.device_id] = s
    firsts = [(s.arrived - s.ts) * 1000 for s in first.values()]

    def q(values: list[float], at: float) -> float | None:
        return round(percentile(values, at), 1) if values else None

    return {
        "p50_ms": q(total, 0.5),
        "p99_ms": q(total, 0.99),
        "p99_to_bridge_ms": q(to_bridge, 0.99),
        "p99_bridge_to_score_ms": q(after_bridge, 0.99),
        "p99_first_reading_ms": q(firsts, 0.99),
    }


_SPLIT_KEYS = (
    "p50_ms",
    "p99_ms",
    "p99_to_bridge_ms",
    "p99_bridge_to_score_ms",
    "p99_first_reading_ms",
)


def count_records(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 300,
    count: Callable[[bytes], int] = lambda value: 1,
) -> int:
    """Read ``topic`` from the start until ``expected`` items were seen (or ``timeout``)."""
    return output_span(bootstrap, topic, expected, timeout, count)[0]


def scores_in(value: bytes) -> int:
    """How many scores a ``twin.scores`` record holds."""
    return len(decode_scores(value))


def reader_at_end(bootstrap: str, *topics: str) -> KafkaConsumer:
    """A consumer (no group) of every partition of ``topics``, its positions at their ends
    already fetched: it reads every record written from the moment it is returned, with no
    wait for an assignment."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = []
        for topic in topics:
            found = consumer.partitions_for_topic(topic)
            if not found:
                raise KafkaError(f"kafka: topic {topic!r} has no partitions (does it exist?)")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for partition in partitions:
            consumer.position(partition)  # resolves the lazy seek now
    except BaseException:
        consumer.close()
        raise
    return consumer


def wait_for_consumed(
    bootstrap: str, group: str, topic: str, expected: int, timeout: float = 300
) -> int:
    """Wait until consumer group ``group`` has committed ``expected`` records of ``topic``
    (from offset 0), by its committed offsets alone: an admin request every half second and no
    record read, so that waiting does not compete with what is being measured. Returns the
    records committed when done or at ``timeout``."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError as LibraryKafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + timeout
    try:
        committed = 0
        while time.monotonic() < deadline:
            try:
                offsets = admin.list_group_offsets(group).get(group, {})
            except LibraryKafkaError:  # the group does not exist yet (its coordinator neither)
                offsets = {}
            committed = sum(m.offset for tp, m in offsets.items() if tp.topic == topic)
            if committed >= expected:
                break
            time.sleep(0.5)
        return committed
    finally:
        admin.close()


def output_span(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 300,
    count: Callable[[bytes], int] = lambda value: 1,
) -> tuple[int, float]:
    """(items seen, seconds from the first record's broker timestamp to the last one's): the
    steady-state pace of whatever produced ``topic``, start-up excluded. ``count`` says how
    many items a record holds (a scores record holds a batch)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen, first, last = 0, None, None
    deadline = time.monotonic() + timeout
    try:
        while seen < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                seen += sum(count(r.value) for r in records)
                stamps = [r.timestamp for r in records]
                first = min(stamps + ([first] if first is not None else []))
                last = max(stamps + ([last] if last is not None else []))
    finally:
        consumer.close()
    return seen, ((last - first) / 1000.0 if first is not None and last is not None else 0.0)


def count_points(
    base_url: str,
    since: float,
    measurement: str = "telemetry",
    field: str = "seq",
    database: str = "twin",
) -> int:
    """How many points of ``measurement`` with ``field`` are stored from ``since`` (unix
    seconds) on, by InfluxQL's ``count()`` on the InfluxDB at ``base_url``."""
    q = f'SELECT count("{field}") FROM "{measurement}" WHERE time >= {int(since * 1000)}ms'
    data = urllib.parse.urlencode({"q": q, "db": database}).encode()
    with urllib.request.urlopen(f"{base_url}/query", data=data, timeout=60) as response:
        result = json.loads(response.read())["results"][0]
    if "error" in result:
        raise ValueError(f"InfluxQL {q!r}: {result['error']}")
    series = result.get("series", [])
    return int(series[0]["values"][0][1]) if series else 0
