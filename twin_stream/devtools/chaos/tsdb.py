"""What a chaos run finds stored in InfluxDB: telemetry points by device and seq, with InfluxQL.

The sink writes one ``telemetry`` point per reading (:mod:`twin_stream.sink.points`), tagged
``device_id``, with the reading's ``seq`` as a field and the device's own timestamp; the same
reading written twice lands on the same point. A reading stored twice under two timestamps
would show as two rows with the same seq, which :func:`stored_readings` keeps apart.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections import Counter
from typing import Any

from twin_stream.sink.measurements import DEVICE_ID, Telemetry

__all__ = ["devices_stored_since", "stored_counts", "stored_readings"]


def _query(base_url: str, q: str, database: str, timeout: float) -> list[dict[str, Any]]:
    """The series an InfluxQL query returns (an error in the result raises ValueError; an
    unreachable server, OSError)."""
    data = urllib.parse.urlencode({"q": q, "db": database, "epoch": "ms"}).encode()
    with urllib.request.urlopen(f"{base_url}/query", data=data, timeout=timeout) as response:
        result = json.loads(response.read())["results"][0]
    if "error" in result:
        raise ValueError(f"InfluxQL {q!r}: {result['error']}")
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def _since(since: float) -> str:
    return f"time >= {int(since * 1000)}ms"


def stored_counts(
    base_url: str, since: float, database: str = "twin", timeout: float = 30.0
) -> dict[str, int]:
    """Telemetry points per device from ``since`` (unix seconds, the readings' own time)."""
    q = (
        f'SELECT count("{Telemetry.SEQ}") FROM "{Telemetry.NAME}" WHERE {_since(since)} '
        f'GROUP BY "{DEVICE_ID}"'
    )
    return {
        s["tags"][DEVICE_ID]: int(s["values"][0][1])
        for s in _query(base_url, q, database, timeout)
        if s.get("values")
    }


def devices_stored_since(
    base_url: str, since: float, database: str = "twin", timeout: float = 10.0
) -> set[str]:
    """The devices with a telemetry point made at or after ``since``."""
    return set(stored_counts(base_url, since, database, timeout))


def stored_readings(
    base_url: str,
    devices: list[str],
    since: float,
    database: str = "twin",
    timeout: float = 120.0,
) -> Counter[tuple[str, int]]:
    """How many points each (device, seq) has from ``since`` on: one query per device, so
    that no answer holds more than one device's run."""
    counts: Counter[tuple[str, int]] = Counter()
    for device in devices:
        quoted = device.replace("\\", "\\\\").replace("'", "\\'")
        q = (
            f'SELECT "{Telemetry.SEQ}" FROM "{Telemetry.NAME}" '
            f"WHERE \"{DEVICE_ID}\" = '{quoted}' AND {_since(since)}"
        )
        for series in _query(base_url, q, database, timeout):
            column = series["columns"].index(Telemetry.SEQ)
            counts.update(
                (device, int(row[column])) for row in series["values"] if row[column] is not None
            )
    return counts
