"""Counting what a benchmark run produced: records on a Kafka topic, points in InfluxDB."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from kafka import KafkaConsumer

__all__ = ["count_points", "count_records", "output_span", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``.

    >>> percentile([3.0, 1.0, 2.0, 4.0], 0.5), percentile([1.0, 2.0], 0.99)
    (3.0, 2.0)
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def count_records(bootstrap: str, topic: str, expected: int, timeout: float = 300) -> int:
    """Read ``topic`` from the start until ``expected`` records were seen (or ``timeout``)."""
    return output_span(bootstrap, topic, expected, timeout)[0]


def output_span(
    bootstrap: str, topic: str, expected: int, timeout: float = 300
) -> tuple[int, float]:
    """(records seen, seconds from the first record's broker timestamp to the last one's): the
    steady-state pace of whatever produced ``topic``, start-up excluded."""
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
                seen += len(records)
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
