"""influxdb-client writes to a real /api/v2/write server (VictoriaMetrics); points read back."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from tests.mqtt_helpers import wait_until


def export(base_url: str, selector: str, start: float | None = None) -> list[dict[str, Any]]:
    """Every raw sample of the series that match a selector (from ``start``, unix seconds),
    from VictoriaMetrics' export API."""
    params = {"match[]": selector, **({"start": f"{start:.3f}"} if start is not None else {})}
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{base_url}/api/v1/export?{query}", timeout=10) as response:
        return [json.loads(line) for line in response.read().decode().splitlines() if line]


def test_points_read_back_with_tags_fields_and_timestamps(
    victoriametrics_url: str, unique: str
) -> None:
    device_id = f"pump-{unique}"[:60]
    start_ms = int(time.time() * 1000) - 60_000
    points = [
        Point("telemetry")
        .tag("device_id", device_id)
        .tag("device_type", "infusion_pump")
        .field("motor_current", 0.40 + i / 100)
        .field("line_pressure", 100.0 + i)
        .time(start_ms + i * 1000, WritePrecision.MS)
        for i in range(5)
    ]
    with InfluxDBClient(url=victoriametrics_url, token="unused", org="twin") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="twin", record=points, write_precision=WritePrecision.MS
        )

    selector = f'{{__name__=~"telemetry_.*",device_id="{device_id}"}}'
    assert wait_until(lambda: len(export(victoriametrics_url, selector)) == 2, timeout=15)
    series = {s["metric"]["__name__"]: s for s in export(victoriametrics_url, selector)}
    assert set(series) == {"telemetry_motor_current", "telemetry_line_pressure"}
    for s in series.values():
        assert s["metric"]["device_type"] == "infusion_pump"
        assert s["timestamps"] == [start_ms + i * 1000 for i in range(5)]
    # VictoriaMetrics stores floats as decimals: 0.41 may come back as the nearest double.
    assert series["telemetry_motor_current"]["values"] == pytest.approx(
        [0.40 + i / 100 for i in range(5)], rel=1e-12
    )
    assert series["telemetry_line_pressure"]["values"] == [100.0 + i for i in range(5)]
