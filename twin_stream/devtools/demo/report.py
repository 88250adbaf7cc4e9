"""The demo's report: one self-contained HTML file (plotly, its JavaScript inlined once).

For each alerted device: its signals (each scaled to its own range, so they share an axis),
its anomaly score, its health index (distance from its frozen healthy reference), the alerts
marked where they opened, and its predicted time to failure (per degrading signal, and the
fleet-learned remaining useful life, ``health_index``, with their intervals).
Then the fleet summary, precision and recall against the simulator's ground truth, and the
run's throughput and latency.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twin_stream.devtools.demo.observer import Observer

__all__ = ["write_report"]


def _times(stamps: list[float]) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t in stamps]


def device_figure(observer: Observer, device_id: str, truth: list[dict[str, Any]]) -> go.Figure:
    """Signals (min-max scaled), anomaly score, health index, alerts and predicted time to
    failure."""
    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        row_heights=[0.4, 0.2, 0.2, 0.2],
        subplot_titles=(
            "signals (each scaled to its own range)",
            "anomaly score",
            "health index (distance from the healthy reference)",
            "predicted time to failure and remaining useful life (min, with range)",
        ),
    )
    readings = list(observer.telemetry.get(device_id, []))
    names = sorted({m for _, metrics in readings for m in metrics})
    for name in names:
        points = [(t, m[name]) for t, m in readings if name in m]
        values = [v for _, v in points]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        fig.add_trace(
            go.Scattergl(
                x=_times([t for t, _ in points]),
                y=[(v - low) / span for v in values],
                name=name,
                mode="lines",
                hovertext=[f"{name} = {v:.4g}" for v in values],
            ),
            row=1,
            col=1,
        )
    for row, (series, name, color) in enumerate(
        (
            (observer.scores, "anomaly score", "black"),
            (observer.health, "health index", "purple"),
        ),
        start=2,
    ):
        points = list(series.get(device_id, []))
        fig.add_trace(
            go.Scattergl(
                x=_times([t for t, _ in points]),
                y=[v for _, v in points],
                name=name,
                mode="lines",
                line={"color": color},
            ),
            row=row,
            col=1,
        )
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for p in observer.predictions.get(device_id, []):
        if p.get("time_to_failure_h") is not None:
            by_metric.setdefault(p["metric"], []).append(p)
    for metric, items in by_metric.items():
        x = [datetime.fromisoformat(p["ts"]) for p in items]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[float(p["time_to_failure_h"]) * 60 for p in items],
                name=f"{metric}: time to failure",
                mode="lines+markers",
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        max(
                            0.0,
                            float(p.get("upper_h") or p["time_to_failure_h"])
                            - float(p["time_to_failure_h"]),
                        )
                        * 60
                        for p in items
                    ],
                    "arrayminus": [
                        max(
                            0.0,
                            float(p["time_to_failure_h"])
                            - float(p.get("lower_h") or p["time_to_failure_h"]),
                        )
                        * 60
                        for p in items
                    ],
                },
            ),
            row=4,
            col=1,
        )
    for alert in (a for a in observer.alerts if a["device_id"] == device_id):
        if alert["state"] != "open":
            continue
        color = "red" if alert["severity"] == "critical" else "orange"
        fig.add_vline(
            x=datetime.fromisoformat(alert["opened_at"]), line={"color": color, "dash": "dash"}
        )
        fig.add_annotation(
            x=datetime.fromisoformat(alert["opened_at"]),
            y=1.08,
            yref="paper",
            showarrow=False,
            text=f"{alert['kind']} ({alert['severity']})",
            font={"color": color},
        )
    for label in truth:
        if label.get("failure"):
            fig.add_vline(x=datetime.fromisoformat(label["failure"]), line={"color": "black"})
            fig.add_annotation(
                x=datetime.fromisoformat(label["failure"]),
                y=1.02,
                yref="paper",
                showarrow=False,
                text=f"simulated failure: {label['fault']}",
            )
    fig.update_layout(height=850, title=device_id, margin={"t": 90})
    return fig


def _rows(items: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    """Table rows (<tr>) of ``items``, one cell per key."""
    return "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(item.get(k) if item.get(k) is not None else ''))}</td>"
            for k in keys
        )
        + "</tr>"
        for item in items
    )


def _fleet_by_type(device_types: dict[str, str], summary: dict[str, Any]) -> list[dict[str, Any]]:
    faulty, alerted = set(summary["faulty_devices"]), set(summary["alerted_devices"])
    return [
        {
            "type": t,
            "devices": sum(1 for x in device_types.values() if x == t),
            "faulty": sum(1 for d, x in device_types.items() if x == t and d in faulty),
            "alerted": sum(1 for d, x in device_types.items() if x == t and d in alerted),
        }
        for t in sorted(set(device_types.values()))
    ]


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def write_report(
    path: Path,
    observer: Observer,
    *,
    summary: dict[str, Any],
    truth: list[dict[str, Any]],
    device_types: dict[str, str],
) -> Path:
    """Write the report; return its path."""
    alerted = summary["alerted_devices"]
    sections = []
    for i, device_id in enumerate(alerted):
        figure = device_figure(
            observer, device_id, [t for t in truth if t["device_id"] == device_id]
        )
        sections.append(
            f"<h2>{html.escape(device_id)} ({html.escape(device_types.get(device_id, '?'))})</h2>"
            + figure.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False)
        )
    alerts_rows = _rows(
        observer.alerts, ("opened_at", "device_id", "kind", "severity", "state", "summary")
    )
    faults = _rows(truth, ("device_id", "fault", "metric", "onset", "failure"))
    by_type = _rows(_fleet_by_type(device_types, summary), ("type", "devices", "faulty", "alerted"))
    latency = f"{summary['p50_ms']:,.0f} / {summary['p99_ms']:,.0f}"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>twin-stream demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:90%}}</style></head>
<body><h1>twin-stream demo report</h1>
<p>{len(device_types)} simulated devices; faults injected by the simulator are the ground truth.</p>
<h2>Summary</h2>
{
        _table(
            [
                ("faulty devices", ", ".join(summary["faulty_devices"]) or "none"),
                ("alerted devices", ", ".join(alerted) or "none"),
                ("precision (alerted devices that were faulty)", f"{summary['precision']:.2f}"),
                ("recall (faulty devices that were alerted)", f"{summary['recall']:.2f}"),
                ("messages published", f"{summary['published']:,}"),
                ("throughput (published, msgs/s)", f"{summary['msgs_per_s']:,.1f}"),
                (
                    "latency publish -> score p50 / p99 (ms)",
                    latency,
                ),
                ("simulated clock", f"x{summary['speed']:g}"),
            ]
        )
    }
<h2>Fleet</h2><table><tr><th>type</th><th>devices</th><th>faulty</th><th>alerted</th></tr>
{by_type}</table>
<h2>Ground truth</h2><table><tr><th>device</th><th>fault</th><th>signal</th><th>onset</th>
<th>failure</th></tr>{faults}</table>
{"".join(sections) or "<p>No device was alerted.</p>"}
<h2>Every alert event</h2><table><tr><th>opened</th><th>device</th><th>kind</th>
<th>severity</th><th>state</th><th>why</th></tr>{alerts_rows}</table>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
