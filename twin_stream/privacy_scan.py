"""``twin-stream privacy scan``: where the platform holds what identifies a person.

Reads every Kafka topic the platform owns (:func:`~twin_stream.domain.topics.kafka_topics`, and
the workers' tables' changelogs, :func:`~twin_stream.domain.topics.worker_changelogs`) and every
InfluxDB measurement over a window, and counts each match of the identifier patterns of
:mod:`twin_stream.domain.privacy` by where (topic or measurement), field and kind. It never
reports a value. A dead letter's payload is looked into too (field ``payload.<path>``); a value
already redacted (a keyed hash) is no match.

A record that is no JSON (a changelog's pickled model) is searched as text for the value
patterns (field ``(value)``); its key is searched the same way (field ``(key)``).
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twin_stream.domain.privacy import Match, find_identifiers, value_kind
from twin_stream.errors import StoreError, map_exceptions
from twin_stream.kafka import KAFKA_ERRORS, make_reader, read_to_end

__all__ = ["Finding", "ScanReport", "scan_influx", "scan_kafka", "scan_record"]


@dataclass(frozen=True, order=True)
class Finding:
    """Identifiers of one kind found in one field of one topic or measurement: how many."""

    source: str  # "kafka" or "influxdb"
    where: str  # the topic, or the measurement
    field: str
    kind: str
    count: int


@dataclass
class ScanReport:
    """What a scan read (records, points) and found, and the topics that did not exist."""

    findings: list[Finding]
    records: int = 0
    points: int = 0
    missing_topics: tuple[str, ...] = ()


def scan_record(key: bytes | None, value: bytes | None) -> Iterator[Match]:
    """The identifiers in one Kafka record: its value as JSON (a dead letter's payload too),
    or as text, and its key as text.

    >>> [(m.field, m.kind) for m in scan_record(b"pump-1", b'{"mrn": "1", "seq": 2}')]
    [('mrn', 'mrn')]
    """
    if key is not None and (kind := value_kind(key.decode("utf-8", "replace"))) is not None:
        yield Match("(key)", kind)
    if value is None:  # a tombstone
        return
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        if (kind := value_kind(value.decode("utf-8", "replace"))) is not None:
            yield Match("(value)", kind)
        return
    yield from find_identifiers(document)
    payload = document.get("payload_base64") if isinstance(document, dict) else None
    if isinstance(payload, str):
        try:
            inner = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            yield Match("payload_base64", "undecodable")
            return
        for match in scan_record(None, inner):
            yield Match(f"payload.{match.field}", match.kind)


def _count(source: str, found: Counter[tuple[str, str, str]]) -> list[Finding]:
    return [Finding(source, w, f, k, n) for (w, f, k), n in sorted(found.items())]


def scan_kafka(
    bootstrap: str,
    options: dict[str, object],
    topics: Iterable[str],
    *,
    since: datetime | None = None,
) -> ScanReport:
    """Scan ``topics`` from ``since`` (record time; None: from their start) to their end as of
    now. A topic that does not exist is named in ``missing_topics``, not an error."""
    found: Counter[tuple[str, str, str]] = Counter()
    records = 0
    missing: list[str] = []
    reader = make_reader(bootstrap, options)
    try:
        with map_exceptions(KAFKA_ERRORS, f"kafka {bootstrap}: scanning for identifiers"):
            for topic in topics:
                partitions = reader.partitions_for_topic(topic)
                if partitions is None:
                    missing.append(topic)
                    continue
                for _, record in read_to_end(reader, topic, sorted(partitions), since):
                    key, value = record.key, record.value
                    records += 1
                    for match in scan_record(key, value):
                        found[(topic, match.field, match.kind)] += 1
    finally:
        reader.close()
    return ScanReport(_count("kafka", found), records=records, missing_topics=tuple(missing))


def _influxql(
    url: str, token: str, database: str, q: str, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """The series an InfluxQL query returns (InfluxDB 1.x, 2.x with a DBRP mapping, 3.x)."""
    data = urllib.parse.urlencode({"q": q, "db": database, "epoch": "ms"}).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/query", data=data)
    if token:
        request.add_header("Authorization", f"Token {token}")
    errors: Mapping[type[BaseException], type[StoreError]] = {
        urllib.error.URLError: StoreError,
        OSError: StoreError,
        ValueError: StoreError,
    }
    with map_exceptions(errors, f"influxdb {url}: {q}"):
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read())
        result = body["results"][0]
        if "error" in result:
            raise ValueError(result["error"])
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def scan_influx(
    url: str, token: str, database: str, *, since: datetime | None = None
) -> ScanReport:
    """Scan every measurement of ``database`` from ``since`` (point time; None: all): each
    tag and field by its name, and each string value by the value patterns."""
    found: Counter[tuple[str, str, str]] = Counter()
    points = 0
    measurements = [
        row[0] for s in _influxql(url, token, database, "SHOW MEASUREMENTS") for row in s["values"]
    ]
    where = f" WHERE time >= {int(since.timestamp() * 1000)}ms" if since is not None else ""
    for measurement in measurements:
        q = f"SELECT * FROM {_ident(measurement)}{where}"
        for series in _influxql(url, token, database, q):
            columns: list[str] = series["columns"]
            for values in series["values"]:
                points += 1
                for column, value in zip(columns, values, strict=True):
                    if column == "time" or value is None:
                        continue
                    for match in find_identifiers({column: value}):
                        found[(measurement, match.field, match.kind)] += 1
    return ScanReport(_count("influxdb", found), points=points)
