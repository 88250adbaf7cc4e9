"""Reading points back from VictoriaMetrics (the local /api/v2/write server) for benchmarks."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

__all__ = ["count_points"]


def count_points(base_url: str, since: float, metric: str = "telemetry_seq") -> int:
    """How many samples of ``metric`` are stored from ``since`` (unix seconds) on."""
    query = urllib.parse.urlencode({"match[]": f'{{__name__="{metric}"}}', "start": f"{since}"})
    with urllib.request.urlopen(f"{base_url}/api/v1/export?{query}", timeout=60) as response:
        return sum(
            len(json.loads(line)["values"])
            for line in response.read().decode().splitlines()
            if line
        )
