"""Typed models of the Grafana objects twin-stream provisions (the subset it uses).

Field names are Python's; :meth:`GrafanaModel.to_grafana` gives the JSON Grafana reads
(camelCase, nothing unset). Unknown fields are refused, so a typo fails at build time.

>>> InfluxQLTarget(ref_id="A", query="SELECT 1").to_grafana()["refId"]
'A'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "DATASOURCE_UID",
    "AlertQuery",
    "AlertRule",
    "Annotation",
    "ContactPoint",
    "Dashboard",
    "DatasourceRef",
    "GrafanaModel",
    "GridPos",
    "InfluxQLTarget",
    "NotificationPolicy",
    "Panel",
    "PolicyRoute",
    "RuleGroup",
    "TemplateVariable",
]

#: The uid every dashboard and alert rule refers to the InfluxDB datasource by.
DATASOURCE_UID = "twin-stream-influxql"


class GrafanaModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def to_grafana(self) -> dict[str, Any]:
        """The JSON Grafana reads: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class DatasourceRef(GrafanaModel):
    type: str = "influxdb"
    uid: str = DATASOURCE_UID


class InfluxQLTarget(GrafanaModel):
    """A raw InfluxQL query; Grafana substitutes ``$timeFilter``, ``$__interval`` and
    dashboard variables such as ``$device_id`` before sending it."""

    ref_id: str
    query: str
    datasource: DatasourceRef = DatasourceRef()
    raw_query: bool = True
    result_format: Literal["time_series", "table"] = "time_series"
    alias: str | None = None


class GridPos(GrafanaModel):
    h: int
    w: int
    x: int
    y: int


class Panel(GrafanaModel):
    id: int
    type: Literal["timeseries", "stat", "table", "bargauge", "text", "state-timeline"]
    title: str
    grid_pos: GridPos
    description: str | None = None
    datasource: DatasourceRef | None = DatasourceRef()
    targets: list[InfluxQLTarget] = Field(default_factory=list)
    field_config: dict[str, Any] = Field(default_factory=lambda: {"defaults": {}, "overrides": []})
    options: dict[str, Any] = Field(default_factory=dict)
    transformations: list[dict[str, Any]] = Field(default_factory=list)


class TemplateVariable(GrafanaModel):
    name: str
    label: str
    query: str
    type: Literal["query"] = "query"
    datasource: DatasourceRef = DatasourceRef()
    refresh: int = 2  # on time range change
    sort: int = 1
    include_all: bool = False
    multi: bool = False


class Annotation(GrafanaModel):
    """An InfluxQL annotation query: one mark per row, text and tags from its columns."""

    name: str
    query: str
    text_column: str
    tags_column: str
    datasource: DatasourceRef = DatasourceRef()
    enable: bool = True
    icon_color: str = "red"

    def to_grafana(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datasource": self.datasource.to_grafana(),
            "enable": self.enable,
            "iconColor": self.icon_color,
            "target": {
                "refId": "Anno",
                "query": self.query,
                "rawQuery": True,
                "fromAnnotations": True,
                "textColumn": self.text_column,
                "tagsColumn": self.tags_column,
            },
        }


class Dashboard(GrafanaModel):
    uid: str
    title: str
    description: str
    panels: list[Panel]
    tags: list[str] = Field(default_factory=lambda: ["twin-stream"])
    variables: list[TemplateVariable] = Field(default_factory=list)
    annotation_queries: list[Annotation] = Field(default_factory=list)
    refresh: str = "30s"
    time_from: str = "now-6h"
    schema_version: int = 39

    def to_grafana(self) -> dict[str, Any]:
        body = super().to_grafana()
        body.pop("variables")
        body.pop("annotationQueries")
        body["time"] = {"from": body.pop("timeFrom"), "to": "now"}
        body["templating"] = {"list": [v.to_grafana() for v in self.variables]}
        body["annotations"] = {"list": [a.to_grafana() for a in self.annotation_queries]}
        body["editable"] = False  # code is the source of truth
        return body


class AlertQuery(GrafanaModel):
    """One step of an alert rule: an InfluxQL query, or a server-side expression."""

    ref_id: str
    model: dict[str, Any]
    datasource_uid: str = DATASOURCE_UID
    relative_time_range: dict[str, int] | None = None

    @classmethod
    def influxql(cls, ref_id: str, query: str, seconds: int) -> AlertQuery:
        return cls(
            ref_id=ref_id,
            relative_time_range={"from": seconds, "to": 0},
            model={
                "refId": ref_id,
                "query": query,
                "rawQuery": True,
                "resultFormat": "time_series",
            },
        )

    @classmethod
    def reduce(
        cls, ref_id: str, of: str, reducer: Literal["last", "max", "min", "mean"]
    ) -> AlertQuery:
        return cls(
            ref_id=ref_id,
            datasource_uid="__expr__",
            model={"refId": ref_id, "type": "reduce", "expression": of, "reducer": reducer},
        )

    @classmethod
    def threshold(cls, ref_id: str, of: str, op: Literal["gt", "lt"], value: float) -> AlertQuery:
        return cls(
            ref_id=ref_id,
            datasource_uid="__expr__",
            model={
                "refId": ref_id,
                "type": "threshold",
                "expression": of,
                "conditions": [{"evaluator": {"type": op, "params": [value]}}],
            },
        )


class AlertRule(GrafanaModel):
    uid: str
    title: str
    condition: str
    data: list[AlertQuery]
    for_: str = Field(alias="for")
    labels: dict[str, str]
    annotations: dict[str, str]
    no_data_state: Literal["OK", "NoData", "Alerting"] = "OK"
    exec_err_state: Literal["OK", "Error", "Alerting"] = "Error"

    def query(self, ref_id: str) -> AlertQuery:
        return next(q for q in self.data if q.ref_id == ref_id)


class RuleGroup(GrafanaModel):
    name: str
    folder_uid: str
    interval_s: int
    rules: list[AlertRule]


class ContactPoint(GrafanaModel):
    uid: str
    name: str
    type: Literal["webhook"] = "webhook"
    settings: dict[str, Any]
    disable_resolve_message: bool = False


class _SnakeCase(GrafanaModel):
    """Notification policies are the one Grafana object spelled in snake_case."""

    model_config = ConfigDict(
        alias_generator=None, populate_by_name=True, extra="forbid", frozen=True
    )


class PolicyRoute(_SnakeCase):
    receiver: str
    object_matchers: list[tuple[str, str, str]]
    group_wait: str
    repeat_interval: str
    continue_: bool = Field(default=False, alias="continue")


class NotificationPolicy(_SnakeCase):
    receiver: str
    group_by: list[str]
    routes: list[PolicyRoute]
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
