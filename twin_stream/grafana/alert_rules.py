"""Grafana unified-alerting rules, the webhook contact point and the notification policy.

Each rule runs one InfluxQL query grouped by device (so every device is its own alert
instance, labelled ``device_id`` and ``device_type`` from the query's tags), reduces each
series to one number and compares it with a threshold taken from the worker's own alert policy.

>>> [r.uid for r in rule_group().rules]
['twin-anomaly', 'twin-predicted-failure', 'twin-offline', 'twin-dead-letters']
"""

from __future__ import annotations

from typing import Literal

from twin_stream.domain.alerting import AlertPolicyParams
from twin_stream.grafana import queries as q
from twin_stream.grafana.model import (
    AlertQuery,
    AlertRule,
    ContactPoint,
    NotificationPolicy,
    PolicyRoute,
    RuleGroup,
)

__all__ = [
    "CONTACT_POINT",
    "FOLDER_UID",
    "WEBHOOK_URL_ENV",
    "contact_point",
    "notification_policy",
    "rule_group",
    "rule_query",
]

FOLDER_UID = "twin-stream"
FOLDER_TITLE = "twin-stream"
CONTACT_POINT = "twin-stream-webhook"
#: Grafana expands ``$VAR`` in provisioning files: the webhook URL never lives in git.
WEBHOOK_URL_ENV = "TWIN_GRAFANA__ALERT_WEBHOOK_URL"
#: Dead letters from one device in 5 minutes that count as a spike.
DEAD_LETTER_SPIKE = 20

_POLICY = AlertPolicyParams()


def _rule(
    uid: str,
    title: str,
    query: q.Query,
    seconds: int,
    reducer: Literal["last", "max", "min", "mean"],
    op: Literal["gt", "lt"],
    value: float,
    *,
    for_: str,
    severity: str,
    summary: str,
    runbook: str,
) -> AlertRule:
    return AlertRule(
        uid=uid,
        title=title,
        condition="C",
        data=[
            AlertQuery.influxql("A", query.influxql, seconds),
            AlertQuery.reduce("B", "A", reducer),
            AlertQuery.threshold("C", "B", op, value),
        ],
        for_=for_,  # type: ignore[call-arg]  # populated by name; Grafana spells it "for"
        labels={"severity": severity, "team": "maintenance"},
        # Templates use .Labels/.Values, not $labels/$values: Grafana expands $NAME in
        # provisioning files from its environment.
        annotations={"summary": summary, "runbook": runbook},
    )


def rule_group() -> RuleGroup:
    """The four rules, evaluated every minute."""
    return RuleGroup(
        name="twin-stream",
        folder_uid=FOLDER_UID,
        interval_s=60,
        rules=[
            _rule(
                "twin-anomaly",
                "Anomaly score high",
                q.RULE_ANOMALY,
                q.RULE_WINDOWS["anomaly"],
                "last",
                "gt",
                _POLICY.anomaly_clear,
                for_="2m",
                severity="warning",
                summary="{{ .Labels.device_id }} ({{ .Labels.device_type }}): every reading for "
                f"3 minutes scored above {_POLICY.anomaly_clear}; the lowest was "
                "{{ .Values.B.Value }}.",
                runbook="Open the device detail dashboard for this device. The deviation panel "
                "shows which signals drive the score. A single signal far from its baseline "
                "points at that sensor or subsystem; several together point at the device's "
                "operating mode. Check the device, then acknowledge in the maintenance log.",
            ),
            _rule(
                "twin-predicted-failure",
                "Predicted failure inside the horizon",
                q.RULE_PREDICTION,
                q.RULE_WINDOWS["prediction"],
                "last",
                "lt",
                _POLICY.prediction_horizon_h,
                for_="5m",
                severity="critical",
                summary="{{ .Labels.device_id }} ({{ .Labels.device_type }}): "
                "{{ .Labels.metric }} is predicted to reach its failure limit in "
                "{{ .Values.B.Value }} h.",
                runbook="Schedule maintenance before the predicted time. The device detail "
                "dashboard shows the trend and its uncertainty band; the earliest bound is the "
                "safe deadline. If the device was just serviced, the trend resets after enough "
                "new readings.",
            ),
            _rule(
                "twin-offline",
                "Device offline",
                q.RULE_OFFLINE,
                q.RULE_WINDOWS["offline"],
                "last",
                "lt",
                1,
                for_="5m",
                severity="warning",
                summary="{{ .Labels.device_id }} ({{ .Labels.device_type }}) is offline.",
                runbook="The device's last will or a missed heartbeat marked it offline. Check "
                "its power and network; desired state set meanwhile is delivered when it "
                "reconnects (retained).",
            ),
            _rule(
                "twin-dead-letters",
                "Dead-letter spike",
                q.RULE_DEAD_LETTERS,
                q.RULE_WINDOWS["dead_letters"],
                "last",
                "gt",
                DEAD_LETTER_SPIKE,
                for_="0s",
                severity="warning",
                summary="{{ .Labels.device_id }}: {{ .Values.B.Value }} payloads refused in "
                "5 minutes.",
                runbook="Read twin.dlq: each letter carries the original bytes and the rule it "
                "broke. A burst after a firmware update usually means the device speaks a "
                "protocol version the platform does not; 'unknown' means the topic itself "
                "was wrong.",
            ),
        ],
    )


def rule_query(rule: AlertRule) -> q.Query:
    """The checked :class:`~twin_stream.grafana.queries.Query` behind a rule's step A."""
    text = rule.query("A").model["query"]
    return next(query for query in q.ALL_QUERIES if query.influxql == text)


def contact_point() -> ContactPoint:
    return ContactPoint(
        uid="twin-webhook",
        name=CONTACT_POINT,
        settings={"url": f"${WEBHOOK_URL_ENV}", "httpMethod": "POST"},
    )


def notification_policy() -> NotificationPolicy:
    """Critical alerts go out at once and repeat hourly; warnings are grouped and slower."""
    return NotificationPolicy(
        receiver=CONTACT_POINT,
        group_by=["alertname", "device_id"],
        routes=[
            PolicyRoute(
                receiver=CONTACT_POINT,
                object_matchers=[("severity", "=", "critical")],
                group_wait="10s",
                repeat_interval="1h",
            ),
            PolicyRoute(
                receiver=CONTACT_POINT,
                object_matchers=[("severity", "=", "warning")],
                group_wait="1m",
                repeat_interval="4h",
            ),
        ],
    )
