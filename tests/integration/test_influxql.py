"""InfluxQL on the real engine (the stack's InfluxDB 1.13) answers for points written to it."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import pytest

from tests.conftest import influxql

pytestmark = pytest.mark.services


def write_lines(base_url: str, db: str, lines: list[str]) -> None:
    request = urllib.request.Request(
        f"{base_url}/write?db={db}&precision=ms", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def test_influxql_returns_written_points(influxdb_url: str, unique: str) -> None:
    db = unique.replace("-", "_")
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    now_ms = int(time.time() * 1000)
    write_lines(
        influxdb_url,
        db,
        [
            f"anomaly,device_id=pump-0001,device_type=infusion_pump score={s} {t}"
            for t, s in zip(range(now_ms - 3000, now_ms, 1000), [0.1, 0.2, 0.9], strict=True)
        ]
        + [f"anomaly,device_id=vent-0002,device_type=ventilator score=0.05 {now_ms - 1000}"],
    )
    result = influxql(
        influxdb_url,
        'SELECT max("score") AS "max_score" FROM "anomaly" WHERE time > now() - 1h '
        'GROUP BY "device_id"',
        db,
    )
    series = result["results"][0]["series"]
    by_device = {s["tags"]["device_id"]: s for s in series}
    assert set(by_device) == {"pump-0001", "vent-0002"}
    assert by_device["pump-0001"]["columns"] == ["time", "max_score"]
    assert by_device["pump-0001"]["values"][0][1] == 0.9
    assert by_device["vent-0002"]["values"][0][1] == 0.05
