"""Counting what a benchmark run produced: records on a Kafka topic, points in the TSDB."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from kafka import KafkaConsumer

__all__ = ["count_points", "count_records"]


def count_records(bootstrap: str, topic: str, expected: int, timeout: float = 300) -> int:
    """Read ``topic`` from the start until ``expected`` records were seen (or ``timeout``)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen, deadline = 0, time.monotonic() + timeout
    try:
        while seen < expected and time.monotonic() < deadline:
            seen += sum(len(r) for r in consumer.poll(timeout_ms=200).values())
    finally:
        consumer.close()
    return seen


def count_points(base_url: str, since: float, metric: str = "telemetry_seq") -> int:
    """How many samples of ``metric`` are stored from ``since`` (unix seconds) on."""
    query = urllib.parse.urlencode({"match[]": f'{{__name__="{metric}"}}', "start": f"{since}"})
    with urllib.request.urlopen(f"{base_url}/api/v1/export?{query}", timeout=60) as response:
        return sum(
            len(json.loads(line)["values"])
            for line in response.read().decode().splitlines()
            if line
        )
