"""The exported provisioning: up to date, and in the structure Grafana's own schema describes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as sdk_alerting
from grafana_foundation_sdk.models import dashboard as sdk_dashboard

from twin_stream.grafana import queries as q
from twin_stream.grafana.alert_rules import (
    contact_point,
    notification_policy,
    rule_group,
    rule_queries,
)
from twin_stream.grafana.dashboards import all_dashboards, device_detail
from twin_stream.grafana.provisioning import export, provisioning_files

COMMITTED = Path(__file__).parents[2] / "deploy" / "grafana" / "provisioning"


def dropped(wanted: Any, got: Any, path: str = "") -> list[str]:
    """Fields of ``wanted`` that did not survive the round trip through Grafana's models."""
    if isinstance(wanted, dict):
        if not isinstance(got, dict):
            return [f"{path}: not an object"]
        return [
            f"{path}.{k}" if k not in got else p
            for k, v in wanted.items()
            for p in ([f"{path}.{k}"] if k not in got else dropped(v, got[k], f"{path}.{k}"))
        ]
    if isinstance(wanted, list):
        if not isinstance(got, list) or len(got) != len(wanted):
            return [f"{path}: list changed"]
        return [
            p
            for i, (w, g) in enumerate(zip(wanted, got, strict=True))
            for p in dropped(w, g, f"{path}[{i}]")
        ]
    return [] if wanted == got else [f"{path}: {wanted!r} became {got!r}"]


def round_trip(model: Any, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(model.from_json(body), cls=JSONEncoder))
    return result


def test_the_committed_provisioning_files_are_up_to_date(tmp_path: Path) -> None:
    export(tmp_path)
    fresh = {
        str(p.relative_to(tmp_path)): p.read_text() for p in tmp_path.rglob("*") if p.is_file()
    }
    committed = {
        str(p.relative_to(COMMITTED)): p.read_text() for p in COMMITTED.rglob("*") if p.is_file()
    }
    assert fresh == committed, "run: twin-stream grafana export deploy/grafana/provisioning"


def test_the_layout_is_grafanas_file_provisioning_layout() -> None:
    files = provisioning_files()
    assert {f.split("/")[0] for f in files} == {"datasources", "dashboards", "alerting"}
    for name, content in files.items():
        body = json.loads(content) if name.endswith(".json") else yaml.safe_load(content)
        if name.endswith(".yaml"):
            assert body["apiVersion"] == 1
    rules = yaml.safe_load(files["alerting/rules.yaml"])["groups"][0]
    assert rules["folder"] and rules["interval"] == "60s" and len(rules["rules"]) == 3


@pytest.mark.parametrize("dashboard", all_dashboards(), ids=lambda d: d.uid)
def test_dashboards_survive_grafanas_own_dashboard_model(dashboard: Any) -> None:
    body = dashboard.to_grafana()
    # Annotation targets are datasource-specific; the schema models only Grafana's built-in one.
    annotations = body.pop("annotations")
    assert dropped(body, round_trip(sdk_dashboard.Dashboard, body)) == []
    for annotation in annotations["list"]:
        assert annotation["datasource"]["uid"] and annotation["target"]["query"]


@pytest.mark.parametrize("rule", rule_group().rules, ids=lambda r: r.uid)
def test_alert_rules_survive_grafanas_own_rule_model(rule: Any) -> None:
    body = rule.to_grafana()
    assert dropped(body, round_trip(sdk_alerting.Rule, body)) == []
    assert {"severity"} <= set(body["labels"]) and {"summary", "runbook"} <= set(
        body["annotations"]
    )
    assert body["condition"] == body["data"][-1]["refId"]  # the last step decides
    # Nothing for Grafana to expand from its environment: no "$" but in math expressions
    # (references to other steps; Grafana expands a provisioned rule's labels, not its model).
    maths = [
        step["model"]["expression"] for step in body["data"] if step["model"].get("type") == "math"
    ]
    text = json.dumps(body)
    for expression in maths:
        text = text.replace(json.dumps(expression), '""')
    assert "$" not in text


def test_the_worker_alert_rule_carries_the_workers_alert_and_a_link_to_its_device() -> None:
    (worker,) = [r for r in rule_group().rules if r.labels.get("source") == "worker"]
    queries = rule_queries(worker)
    assert queries == {"A": q.RULE_ALERT_PAGES, "B": q.RULE_ALERT_LATEST}
    # Each page's labels are the tags of the sink's alert_page points: what the alert says.
    assert {"device_id", "device_type", "kind", "severity", "alert", "summary"} <= set(
        q.RULE_ALERT_PAGES.tags
    )
    assert q.RULE_ALERT_LATEST.tags == ("alert",)  # a subset of the page's: Grafana joins them
    body = worker.to_grafana()
    (math,) = [s["model"] for s in body["data"] if s["model"].get("type") == "math"]
    assert (body["condition"], math["expression"]) == ("E", "$C == $D")
    assert body["labels"]["severity"] == "{{ .Labels.severity }}"  # the worker's own severity
    assert "{{ .Labels.summary }}" in body["annotations"]["summary"]
    dashboard = device_detail()
    (variable,) = (v.name for v in dashboard.variables)
    link = body["annotations"]["dashboard_url"]
    assert (
        link.startswith(f"/d/{dashboard.uid}/")
        and f"var-{variable}={{{{ .Labels.{variable} }}}}" in link
    )
    # Grafana re-derives nothing the worker sees: no rule reads the scores, the predictions or
    # the twins' connectivity per device any more.
    texts = [query.influxql for rule in rule_group().rules for query in rule_queries(rule).values()]
    assert not any('FROM "prediction"' in t or '"online"' in t for t in texts)
    assert not any('FROM "anomaly"' in t and "GROUP BY" in t for t in texts)


def test_contact_point_and_policy_survive_grafanas_own_models() -> None:
    point, policy = contact_point().to_grafana(), notification_policy().to_grafana()
    assert dropped(point, round_trip(sdk_alerting.ContactPoint, point)) == []
    assert dropped(policy, round_trip(sdk_alerting.NotificationPolicy, policy)) == []
    matchers = [tuple(route["object_matchers"][0]) for route in policy["routes"]]
    assert matchers == [
        ("source", "=", "worker"),  # first: the worker's pages, whatever their severity
        ("severity", "=", "critical"),
        ("severity", "=", "warning"),
    ]
    assert "alert" in policy["group_by"]  # one notification per worker alert
    # The worker re-notifies; Grafana does not repeat its pages (an acknowledged alert is quiet).
    assert policy["routes"][0]["repeat_interval"] == "168h"


def test_a_misspelled_field_would_be_caught() -> None:
    body = all_dashboards()[0].to_grafana()
    body["panels"][0]["gridpos"] = body["panels"][0].pop("gridPos")
    assert dropped(body, round_trip(sdk_dashboard.Dashboard, body)) != []
