"""Grafana unified-alerting rules, the webhook contact point and the notification policy.

The worker decides who is paged and when: its alert policy opens, escalates and resolves alerts
(:mod:`twin_stream.domain.alerting`), people acknowledge and shelve them, and it re-notifies an
unacknowledged critical one (:mod:`twin_stream.domain.alert_lifecycle`). Grafana derives no
alert of its own from the data the worker sees; it delivers the worker's pages, and watches
only what no worker can see:

* ``twin-worker-alerts``: the worker's own alerts. Every alert event that pages (``open``, an
  ``updated`` that still pages, ``unshelved``, ``renotified``) is stored by the sink as an
  ``alert_page`` point tagged with the alert's device, kind, severity, id and explanation
  (:func:`twin_stream.sink.points._alert`). The rule makes one alert instance per page, labelled
  with those tags, and fires while that page is still the alert's latest event (math
  ``$C == $D``: the page's revision against the alert's latest revision, from the ``alert``
  measurement, joined by the ``alert`` label). An acknowledgement, a shelving, a resolution or
  the next page moves the alert past it, and Grafana resolves that instance: acknowledged and
  shelved alerts stop paging, and each re-notification is a notification of its own. Its
  annotations carry the worker's summary and a link to the device's dashboard.
* ``twin-pipeline-silent``: no score stored fleet-wide for 5 minutes (no data counts as
  firing): something between the devices and InfluxDB is down (broker, bridge, Kafka, worker,
  sink), which no worker can report.
* ``twin-dead-letters``: a burst of refused payloads from one device (the bridge refuses them;
  the worker counts them in the twin but raises no alert for them).

>>> [r.uid for r in rule_group().rules]
['twin-worker-alerts', 'twin-pipeline-silent', 'twin-dead-letters']
"""

from __future__ import annotations

from typing import Literal

from twin_stream.grafana import queries as q
from twin_stream.grafana.dashboards import device_detail
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
    "device_dashboard_link",
    "notification_policy",
    "rule_group",
    "rule_queries",
    "rule_query",
]

FOLDER_UID = "twin-stream"
FOLDER_TITLE = "twin-stream"
CONTACT_POINT = "twin-stream-webhook"
#: Grafana expands ``$VAR`` in provisioning files: the webhook URL never lives in git.
WEBHOOK_URL_ENV = "TWIN_GRAFANA__ALERT_WEBHOOK_URL"
#: Dead letters from one device in 5 minutes that count as a spike.
DEAD_LETTER_SPIKE = 20
#: The label of the worker's own alerts, which the notification policy routes on.
WORKER_SOURCE = ("source", "worker")


def device_dashboard_link() -> str:
    """The device detail dashboard of an alert instance's device (a path on Grafana's own
    address), from the dashboard's uid and its device variable.

    >>> device_dashboard_link()
    '/d/twin-device/?orgId=1&var-device_id={{ .Labels.device_id }}'
    """
    dashboard = device_detail()
    (variable,) = (v.name for v in dashboard.variables)
    return f"/d/{dashboard.uid}/?orgId=1&var-{variable}={{{{ .Labels.{variable} }}}}"


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
    no_data_state: Literal["OK", "NoData", "Alerting"] = "OK",
) -> AlertRule:
    """A rule on one query: reduce each series to a number, compare it with a threshold."""
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
        no_data_state=no_data_state,
    )


def _worker_alerts() -> AlertRule:
    """The worker's own alerts: one instance per page, firing while it is the latest event."""
    window = q.RULE_WINDOWS["pages"]
    return AlertRule(
        uid="twin-worker-alerts",
        title="Device alert",
        condition="E",
        data=[
            AlertQuery.influxql("A", q.RULE_ALERT_PAGES.influxql, window),
            AlertQuery.influxql("B", q.RULE_ALERT_LATEST.influxql, window),
            AlertQuery.reduce("C", "A", "last"),
            AlertQuery.reduce("D", "B", "last"),
            # The page is the alert's latest event: nobody acknowledged or shelved it since,
            # it did not resolve, and it is not superseded by a newer page. ($C and $D are
            # expression references: Grafana does not expand a rule's model from its
            # environment, only its labels.)
            AlertQuery(
                ref_id="E",
                datasource_uid="__expr__",
                model={"refId": "E", "type": "math", "expression": "$C == $D"},
            ),
        ],
        for_="0s",  # type: ignore[call-arg]  # the worker's policy already waited
        # The query's tags are the instance's labels: device_id, device_type, kind, severity,
        # alert (its id), summary, event (open, updated, unshelved, renotified) and page.
        labels={
            "severity": "{{ .Labels.severity }}",
            "team": "maintenance",
            WORKER_SOURCE[0]: WORKER_SOURCE[1],
        },
        annotations={
            "summary": "{{ .Labels.device_id }} ({{ .Labels.device_type }}), "
            "{{ .Labels.severity }} {{ .Labels.kind }}: {{ .Labels.summary }}",
            "description": "Alert {{ .Labels.alert }} of the twin-stream worker "
            "({{ .Labels.event }}, event {{ .Labels.page }}).",
            "dashboard_url": device_dashboard_link(),
            "runbook": "Open the device's dashboard (dashboard_url): its signals, anomaly score, "
            "deviations and predicted time to failure explain the alert. Acknowledge it when "
            "you take it on (POST /alerts/{{ .Labels.alert }}/ack with a note) or shelve it "
            'for a while (POST /alerts/{{ .Labels.alert }}/shelve {"minutes": N}): either '
            "stops the paging. An unacknowledged critical alert pages again every few "
            "minutes.",
        },
    )


def rule_group() -> RuleGroup:
    """The rules, evaluated every minute."""
    return RuleGroup(
        name="twin-stream",
        folder_uid=FOLDER_UID,
        interval_s=60,
        rules=[
            _worker_alerts(),
            _rule(
                "twin-pipeline-silent",
                "No data from the pipeline",
                q.RULE_PIPELINE,
                q.RULE_WINDOWS["pipeline"],
                "last",
                "lt",
                1,
                for_="2m",
                severity="critical",
                summary="No anomaly score reached InfluxDB for 5 minutes: the devices' data "
                "is not flowing, so no worker alert can be raised either.",
                runbook="Follow the data's path: are devices connected to the MQTT broker, is "
                "the bridge running (twin.telemetry growing), are the workers consuming "
                "(their lag on twin.telemetry), is the sink writing (its lag on twin.scores, "
                "InfluxDB answering)? `twin-stream stack status` shows the local stack.",
                no_data_state="Alerting",
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


def rule_queries(rule: AlertRule) -> dict[str, q.Query]:
    """The checked :class:`~twin_stream.grafana.queries.Query` behind each of a rule's InfluxQL
    steps, by ref id."""
    by_text = {query.influxql: query for query in q.ALL_QUERIES}
    return {
        step.ref_id: by_text[step.model["query"]]
        for step in rule.data
        if step.datasource_uid != "__expr__"
    }


def rule_query(rule: AlertRule) -> q.Query:
    """The checked query behind a rule's step A."""
    return rule_queries(rule)["A"]


def contact_point() -> ContactPoint:
    return ContactPoint(
        uid="twin-webhook",
        name=CONTACT_POINT,
        settings={"url": f"${WEBHOOK_URL_ENV}", "httpMethod": "POST"},
    )


def notification_policy() -> NotificationPolicy:
    """The worker's pages go out at once, one notification per alert (grouped by its id), and
    Grafana repeats none (a week): the worker re-notifies, and an acknowledged or shelved alert
    must stay quiet. Grafana's own rules: critical at once and hourly, warnings slower."""
    return NotificationPolicy(
        receiver=CONTACT_POINT,
        group_by=["alertname", "device_id", "alert"],
        # A new page of an alert (a re-notification) joins its group: sent within a minute.
        group_interval="1m",
        routes=[
            PolicyRoute(
                receiver=CONTACT_POINT,
                object_matchers=[(WORKER_SOURCE[0], "=", WORKER_SOURCE[1])],
                group_wait="10s",
                repeat_interval="168h",
            ),
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
