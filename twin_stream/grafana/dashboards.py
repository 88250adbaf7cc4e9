"""The three dashboards: fleet overview, device detail and alerts.

>>> [d.uid for d in all_dashboards()]
['twin-fleet', 'twin-device', 'twin-alerts']
"""

from __future__ import annotations

from typing import Any, Literal

from twin_stream.domain.alerting import AlertPolicyParams
from twin_stream.grafana import queries as q
from twin_stream.grafana.model import (
    Annotation,
    Dashboard,
    GridPos,
    InfluxQLTarget,
    Panel,
    TemplateVariable,
)

__all__ = ["alerts", "all_dashboards", "device_detail", "fleet_overview"]

_POLICY = AlertPolicyParams()
PanelType = Literal["timeseries", "stat", "table", "bargauge"]


def _targets(*queries: q.Query, aliases: tuple[str, ...] = ()) -> list[InfluxQLTarget]:
    return [
        InfluxQLTarget(
            ref_id=chr(ord("A") + i),
            query=query.influxql,
            result_format=query.format,
            alias=aliases[i] if i < len(aliases) else None,
        )
        for i, query in enumerate(queries)
    ]


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def _panel(
    id: int,
    kind: PanelType,
    title: str,
    at: tuple[int, int, int, int],
    *queries: q.Query,
    description: str,
    unit: str | None = None,
    thresholds: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    aliases: tuple[str, ...] = (),
    transformations: list[dict[str, Any]] | None = None,
) -> Panel:
    w, h, x, y = at
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if thresholds:
        defaults["thresholds"] = thresholds
    return Panel(
        id=id,
        type=kind,
        title=title,
        description=description,
        grid_pos=GridPos(w=w, h=h, x=x, y=y),
        targets=_targets(*queries, aliases=aliases),
        field_config={"defaults": defaults, "overrides": []},
        options=options or {},
        transformations=transformations or [],
    )


_SCORE_STEPS = _thresholds(
    (None, "green"), (_POLICY.anomaly_clear, "orange"), (_POLICY.anomaly_raise, "red")
)
_TTF_STEPS = _thresholds(
    (None, "red"),
    (_POLICY.prediction_critical_h, "orange"),
    (_POLICY.prediction_horizon_h, "green"),
)
_BY_SCORE = {"sortBy": [{"displayName": "score", "desc": True}]}


def fleet_overview() -> Dashboard:
    """What a maintenance engineer keeps on the wall: what is online, what is alerting,
    what looks odd now, what will fail soon, and whether the data itself is healthy."""
    return Dashboard(
        uid="twin-fleet",
        title="twin-stream: fleet overview",
        description="Every twin at a glance: connectivity, alerts, anomalies, predictions.",
        panels=[
            _panel(
                1,
                "bargauge",
                "Devices online / offline by type",
                (8, 8, 0, 0),
                q.ONLINE_BY_TYPE,
                description="Each device's last reported connectivity, counted per device type.",
                options={"displayMode": "basic", "orientation": "horizontal"},
            ),
            _panel(
                2,
                "stat",
                "Open alerts by severity",
                (8, 8, 8, 0),
                q.OPEN_ALERTS_BY_SEVERITY,
                description="Alerts raised and not yet resolved, by severity.",
                thresholds=_thresholds((None, "green"), (1, "red")),
            ),
            _panel(
                3,
                "table",
                "Highest anomaly scores now",
                (8, 8, 16, 0),
                q.ANOMALY_NOW,
                description="Each device's latest anomaly score (0-1, calibrated); "
                f"alerts open above {_POLICY.anomaly_raise}.",
                thresholds=_SCORE_STEPS,
                options=_BY_SCORE,
            ),
            _panel(
                4,
                "table",
                "Predicted failures inside 24 h",
                (12, 8, 0, 8),
                q.PREDICTED_FAILURES,
                description="Signals whose trend reaches the device type's failure limit within "
                "24 h: predicted time (h) with its uncertainty band.",
                unit="h",
                thresholds=_TTF_STEPS,
                options={"sortBy": [{"displayName": "ttf_h", "desc": False}]},
            ),
            _panel(
                5,
                "stat",
                "Data quality (fleet totals)",
                (12, 4, 12, 8),
                q.DATA_QUALITY,
                description="Duplicates, reordering, stale and invalid payloads, gaps and sensor "
                "dropouts, summed over every twin: trouble with the data, not the devices.",
            ),
            _panel(
                6,
                "timeseries",
                "Dead letters per interval, by rule",
                (12, 4, 12, 12),
                q.DEAD_LETTER_RATE,
                description="Payloads the bridge refused (twin.dlq), by the rule they broke.",
            ),
        ],
    )


def device_detail() -> Dashboard:
    """One device: its signals with their anomaly score, its predictions and its state."""
    return Dashboard(
        uid="twin-device",
        title="twin-stream: device detail",
        description="One device's signals, anomaly score, predicted time to failure and state.",
        variables=[TemplateVariable(name="device_id", label="Device", query=q.DEVICE_IDS.influxql)],
        annotation_queries=[
            Annotation(
                name="Alerts",
                query=q.DEVICE_ALERT_MARKS.influxql,
                text_column="summary",
                tags_column="kind,severity,state",
            )
        ],
        panels=[
            _panel(
                1,
                "timeseries",
                "Signals ($device_id)",
                (24, 8, 0, 0),
                q.DEVICE_SIGNALS,
                description="Every signal the device reports (mean per interval).",
            ),
            _panel(
                2,
                "timeseries",
                "Anomaly score",
                (12, 7, 0, 8),
                q.DEVICE_SCORE,
                description="The calibrated anomaly score; alerts mark the raise and resolve.",
                thresholds=_SCORE_STEPS,
                options={"legend": {"showLegend": False}},
            ),
            _panel(
                3,
                "timeseries",
                "Deviation from the device's own baseline (z)",
                (12, 7, 12, 8),
                q.DEVICE_DEVIATIONS,
                description="Each signal's robust z-score against this device's baseline: "
                "which signals drive the anomaly score.",
            ),
            _panel(
                4,
                "timeseries",
                "Predicted time to failure (h), with uncertainty",
                (12, 7, 0, 15),
                q.DEVICE_TIME_TO_FAILURE,
                unit="h",
                thresholds=_TTF_STEPS,
                description="Per degrading signal: predicted hours until the failure limit, "
                "and the lower and upper bounds; 'health_index': the remaining useful life "
                "the fleet's past failures predict, with its interval.",
            ),
            _panel(
                5,
                "timeseries",
                "Reported vs desired settings",
                (8, 7, 12, 15),
                q.DEVICE_SETTINGS,
                description="What the device reports against what the platform asked for.",
            ),
            _panel(
                6,
                "stat",
                "Twin state",
                (4, 7, 20, 15),
                q.DEVICE_STATE,
                description="online (1) / offline (0), settings not yet applied (delta), "
                "twin version.",
            ),
            _panel(
                8,
                "timeseries",
                "Health index (distance from the device's healthy reference)",
                (24, 7, 0, 22),
                q.DEVICE_HEALTH,
                description="How far the device's recent readings are from its own healthy "
                "reference, learned over its first readings and then frozen (re-learned only "
                "after maintenance, a firmware change or a re-baseline): 0 to 1 is like the "
                "reference, a sustained rise is a slow degradation. The stage is 1 while it "
                "degrades (warning) and 2 when critical. The fleet-learned remaining useful "
                "life is the 'health_index' series of the time-to-failure panel.",
            ),
            _panel(
                7,
                "table",
                "Commands",
                (24, 7, 0, 29),
                q.DEVICE_COMMANDS,
                description="The device's recent desired-state commands, one row each: its "
                "status (pending, delivered, applied, rejected, expired), why it was rejected "
                "(the device's reason) or expired, what it changed and the twin version of "
                "the desired document that carries it.",
                options={"sortBy": [{"displayName": "twin_version", "desc": True}]},
            ),
        ],
    )


def alerts() -> Dashboard:
    """Alert history for the ops team: who, what, how bad, why and for how long."""
    return Dashboard(
        uid="twin-alerts",
        title="twin-stream: alerts",
        description="Alerts raised by the workers: open now, raised over time, full history.",
        time_from="now-24h",
        panels=[
            _panel(
                1,
                "table",
                "Open now",
                (24, 7, 0, 0),
                q.OPEN_ALERTS,
                description="Open alerts with their explanation.",
            ),
            _panel(
                2,
                "timeseries",
                "Alerts raised per interval",
                (24, 6, 0, 7),
                q.ALERTS_RAISED,
                description="Alerts opened per interval, by severity.",
            ),
            _panel(
                3,
                "table",
                "History",
                (24, 12, 0, 13),
                q.ALERT_HISTORY,
                unit="s",
                description="Every raise and resolve: device, kind, severity, explanation and, "
                "once resolved, how long it lasted (s).",
            ),
        ],
    )


def all_dashboards() -> list[Dashboard]:
    return [fleet_overview(), device_detail(), alerts()]
