"""The demo's live terminal view (rich): the fleet, the pipeline's pace, and what it caught."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from twin_stream.devtools.bench.readback import percentile
from twin_stream.devtools.demo.observer import Observer

__all__ = ["STAGES", "render"]

#: The pipeline's stages, in the order a message passes them: (counter, label).
STAGES = (
    ("published", "devices -> MQTT"),
    ("telemetry", "bridge -> Kafka"),
    ("scores", "worker: scored"),
    ("stored", "sink -> TSDB"),
)
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _fleet(observer: Observer, device_types: dict[str, str]) -> Table:
    table = Table("type", "devices", "online", "offline", title="Fleet", expand=True)
    states = Counter(
        (device_types[d], observer.twins.get(d, {}).get("connectivity", "unknown"))
        for d in device_types
    )
    for device_type in sorted(set(device_types.values())):
        total = sum(1 for t in device_types.values() if t == device_type)
        online, offline = states[(device_type, "online")], states[(device_type, "offline")]
        table.add_row(
            device_type, str(total), f"[green]{online}", f"[red]{offline}" if offline else "0"
        )
    return table


def _pace(observer: Observer, totals: dict[str, int]) -> Table:
    rates = observer.rates()
    table = Table("stage", "messages", "msgs/s", title="Pipeline", expand=True)
    for key, label in STAGES:
        table.add_row(label, f"{totals.get(key, 0):,}", f"{rates.get(key, 0.0):,.0f}")
    latencies = list(observer.latencies_ms)
    if latencies:
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        table.add_row("publish -> score", "p50 / p99", f"{p50:,.0f} / {p99:,.0f} ms")
    return table


def _scores(observer: Observer, device_types: dict[str, str]) -> Table:
    table = Table("device", "type", "score", title="Highest anomaly scores now", expand=True)
    latest = [(d, s[-1][1]) for d, s in observer.scores.items() if s]
    for device, score in sorted(latest, key=lambda x: -x[1])[:6]:
        style = "red" if score >= 0.999 else "yellow" if score >= 0.99 else "default"
        table.add_row(device, device_types.get(device, "?"), f"[{style}]{score:.4f}")
    return table


def _predictions(observer: Observer, speed: float) -> Table:
    table = Table(
        "device",
        "signal",
        "fails in",
        "range",
        "(simulated)",
        title="Predicted failures",
        expand=True,
    )
    for p in observer.latest_predictions()[:6]:
        ttf = float(p["time_to_failure_h"]) * 3600
        low = float(p.get("lower_h") or 0.0) * 3600
        high = float(p.get("upper_h") or 0.0) * 3600
        table.add_row(
            p["device_id"],
            p["metric"],
            f"{ttf / 60:,.1f} min",
            f"{low / 60:,.1f}-{high / 60:,.1f}",
            f"{ttf * speed / 3600:,.1f} h",
        )
    return table


def _alerts(observer: Observer) -> Table:
    table = Table("device", "kind", "severity", "why", title="Open alerts", expand=True)
    # What the detectors found comes first; connectivity alerts after.
    ranked = sorted(
        observer.open_alerts.values(),
        key=lambda a: (a["kind"] not in ("anomaly", "predicted_failure"), a["opened_at"]),
    )
    for alert in ranked[:8]:
        style = _SEVERITY_STYLE.get(alert["severity"], "default")
        table.add_row(
            alert["device_id"], alert["kind"], f"[{style}]{alert['severity']}", alert["summary"]
        )
    return table


def render(
    observer: Observer,
    *,
    device_types: dict[str, str],
    totals: dict[str, int],
    elapsed_s: float,
    duration_s: float,
    speed: float,
) -> RenderableType:
    """One frame of the live view."""
    with observer.lock:
        top = Table.grid(expand=True)
        top.add_column(ratio=1)
        top.add_column(ratio=1)
        top.add_row(_fleet(observer, device_types), _pace(observer, totals))
        middle = Table.grid(expand=True)
        middle.add_column(ratio=1)
        middle.add_column(ratio=1)
        middle.add_row(_scores(observer, device_types), _predictions(observer, speed))
        alerts = _alerts(observer)
    header = (
        f"twin-stream demo: {len(device_types)} devices, simulated clock x{speed:g}, "
        f"{elapsed_s:,.0f}/{duration_s:,.0f} s (Ctrl-C stops cleanly)"
    )
    body: list[Any] = [top, middle, alerts]
    return Panel(Group(*body), title=header)
