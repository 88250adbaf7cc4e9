"""Push the provisioning to a running Grafana over its HTTP API (grafana-client).

Each object is read first and written only when Grafana's copy differs from ours (every field
we set has our value), so pushing twice changes nothing. Objects: the folder, the datasource,
the dashboards, the alert rule group, the contact point and the notification policy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from twin_stream.errors import TwinStreamError
from twin_stream.grafana.alert_rules import (
    FOLDER_TITLE,
    FOLDER_UID,
    contact_point,
    notification_policy,
    rule_group,
)
from twin_stream.grafana.dashboards import all_dashboards
from twin_stream.grafana.provisioning import datasource

__all__ = ["PushReport", "expand_env", "push"]


@dataclass
class PushReport:
    """What a push did to each object: ``created``, ``updated`` or ``unchanged``."""

    actions: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> list[str]:
        return [name for name, action in self.actions.items() if action != "unchanged"]


def contains(current: Any, wanted: Any) -> bool:
    """True if ``current`` (Grafana's copy) has every field of ``wanted`` with its value.

    >>> contains({"a": 1, "id": 7, "b": [{"x": 1, "y": 2}]}, {"a": 1, "b": [{"x": 1}]})
    True
    >>> contains({"a": 1}, {"a": 2})
    False
    """
    if isinstance(wanted, Mapping):
        return isinstance(current, Mapping) and all(
            k in current and contains(current[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(current, list)
            and len(current) == len(wanted)
            and all(contains(c, w) for c, w in zip(current, wanted, strict=True))
        )
    return bool(current == wanted)


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``$NAME`` placeholders as Grafana's provisioning would (a missing one is an
    error here: a push must not send a placeholder as a URL or a token)."""
    if isinstance(value, str):
        import re

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise TwinStreamError(f"grafana push: environment variable {name} is not set")
            return env[name]

        return re.sub(r"\$([A-Z][A-Z0-9_]*)", one, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def _get(read: Callable[[], Any]) -> Any | None:
    try:
        return read()
    except GrafanaClientError as e:
        if e.status_code == 404:
            return None
        raise


def push(api: GrafanaApi, env: Mapping[str, str] | None = None) -> PushReport:
    """Create or update every twin-stream object in the Grafana behind ``api``."""
    env = os.environ if env is None else env
    report = PushReport()
    provisioning = api.alertingprovisioning

    folder = _get(lambda: api.folder.get_folder(FOLDER_UID))
    if folder is None:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        report.actions["folder"] = "created"
    elif folder.get("title") != FOLDER_TITLE:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        report.actions["folder"] = "updated"
    else:
        report.actions["folder"] = "unchanged"

    source = expand_env(datasource(), env)
    secure = source.pop("secureJsonData")
    current = _get(lambda: api.datasource.get_datasource_by_uid(source["uid"]))
    if current is None:
        api.datasource.create_datasource({**source, "secureJsonData": secure})
        report.actions["datasource"] = "created"
    elif not contains(current, source):
        api.datasource.update_datasource_by_uid(source["uid"], {**source, "secureJsonData": secure})
        report.actions["datasource"] = "updated"
    else:
        report.actions["datasource"] = "unchanged"

    for dashboard in all_dashboards():
        body = dashboard.to_grafana()
        current = _get(partial(api.dashboard.get_dashboard, dashboard.uid))
        name = f"dashboard {dashboard.uid}"
        if current is not None and contains(current.get("dashboard"), body):
            report.actions[name] = "unchanged"
            continue
        api.dashboard.update_dashboard(
            {
                "dashboard": body,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "twin-stream",
            }
        )
        report.actions[name] = "created" if current is None else "updated"

    group = rule_group()
    wanted_group = {
        "title": group.name,
        "folderUid": FOLDER_UID,
        "interval": group.interval_s,
        "rules": [
            {**r.to_grafana(), "folderUID": FOLDER_UID, "ruleGroup": group.name, "orgID": 1}
            for r in group.rules
        ],
    }
    current = _get(lambda: provisioning.get_rule_group(FOLDER_UID, group.name))
    if current is None or not contains(current, wanted_group):
        provisioning.update_rule_group(FOLDER_UID, group.name, wanted_group)
        report.actions["rule group"] = "created" if current is None else "updated"
    else:
        report.actions["rule group"] = "unchanged"

    point = expand_env(contact_point().to_grafana(), env)
    existing = provisioning.get_contactpoints(name=point["name"]) or []
    if not existing:
        provisioning.create_contactpoint(point)
        report.actions["contact point"] = "created"
    elif not contains(existing[0], point):
        provisioning.update_contactpoint(point["uid"], point)
        report.actions["contact point"] = "updated"
    else:
        report.actions["contact point"] = "unchanged"

    policy = notification_policy().to_grafana()
    if contains(provisioning.get_notification_policy_tree(), policy):
        report.actions["notification policy"] = "unchanged"
    else:
        provisioning.set_notification_policy_tree(policy)
        report.actions["notification policy"] = "updated"
    return report
