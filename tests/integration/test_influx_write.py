"""influxdb-client writes through the v2 write API of the real server (the stack's InfluxDB 1.13,
``/api/v2/write?bucket=DB/RP``), as the sink does; the points read back by InfluxQL."""

from __future__ import annotations

import time

import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from tests.conftest import influxql, rows, stored_seqs

pytestmark = pytest.mark.services


def test_points_read_back_with_tags_fields_and_timestamps(influxdb_url: str, unique: str) -> None:
    db = unique.replace("-", "_")
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    device_id = f"pump-{unique}"[:60]
    start_ms = int(time.time() * 1000) - 60_000
    points = [
        Point("telemetry")
        .tag("device_id", device_id)
        .tag("device_type", "infusion_pump")
        .field("motor_current", 0.40 + i / 100)
        .field("line_pressure", 100.0 + i)
        .field("seq", i)
        .time(start_ms + i * 1000, WritePrecision.MS)
        for i in range(5)
    ]
    # A v1 server's v2 API: bucket "database/retention-policy", token "user:password" (any
    # token while auth is off); the org is not used.
    with InfluxDBClient(url=influxdb_url, token="twin:unused", org="twin") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=f"{db}/autogen", record=points, write_precision=WritePrecision.MS
        )

    got = rows(influxdb_url, db, 'SELECT * FROM "telemetry" GROUP BY *')
    assert [r["time"] for r in got] == [start_ms + i * 1000 for i in range(5)]
    assert all(r["device_id"] == device_id for r in got)
    assert all(r["device_type"] == "infusion_pump" for r in got)
    assert [r["motor_current"] for r in got] == [0.40 + i / 100 for i in range(5)]
    assert [r["line_pressure"] for r in got] == [100.0 + i for i in range(5)]
    assert [r["seq"] for r in got] == list(range(5))  # an integer field stays an integer
    assert stored_seqs(influxdb_url, db) == [(device_id, i) for i in range(5)]
