"""Push the provisioning to a running Grafana over its HTTP API (grafana-client).

Each object is read first and written only when Grafana's copy differs from ours (every field
we set has our value), so pushing twice changes nothing. Objects: the folder, the datasource,
the dashboards, the alert rule group, the contact point and twin-stream's route in the
notification policy tree.

The notification policy tree is the organisation's, one for all its alerts: push manages only
its own subtree, one route matching the alerts of twin-stream's folder (``grafana_folder``, the
label Grafana gives every alert with its rule's folder title), with the routes by severity under
it. It reads the tree, replaces that route where it is (or inserts it first, so that a catch-all
route of someone else's cannot take twin-stream's alerts), and writes the tree back: the root's
receiver and timings and every other route stay as they were, and so does the tree's
editability in Grafana's UI.

The ``$TWIN_...`` placeholders of the provisioning are filled from the variables the caller
passes (the CLI builds them from its settings); this module never reads the environment.
This is grafana-client's edge: what it raises (Grafana's refusals, a server that does not
answer) comes out as :class:`~twin_stream.errors.GrafanaError`, naming what was being done; a
variable that is missing is a :class:`~twin_stream.errors.ConfigError` naming it, raised before
anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from twin_stream.errors import ConfigError, GrafanaError, TwinStreamError, map_exceptions
from twin_stream.grafana.alert_rules import (
    FOLDER_TITLE,
    FOLDER_UID,
    contact_point,
    notification_policy,
    rule_group,
)
from twin_stream.grafana.dashboards import all_dashboards
from twin_stream.grafana.provisioning import datasource

__all__ = [
    "GRAFANA_ERRORS",
    "POLICY_MATCHER",
    "PushReport",
    "expand_env",
    "policy_route",
    "push",
    "with_policy_route",
]

#: The matcher of the one route of the notification policy tree that push manages: the alerts
#: of the rules in twin-stream's folder.
POLICY_MATCHER: Final = ("grafana_folder", "=", FOLDER_TITLE)

#: grafana-client's errors in the tree: Grafana's answers (4xx, 5xx, timeouts: its
#: GrafanaException family) and no answer at all (its HTTP library's connection errors, which
#: grafana-client lets through, are OSErrors).
GRAFANA_ERRORS: Final[Mapping[type[BaseException], type[TwinStreamError]]] = {
    GrafanaException: GrafanaError,
    OSError: GrafanaError,
}


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


def expand_env(value: Any, variables: Mapping[str, str]) -> Any:
    """Replace ``$NAME`` placeholders as Grafana's provisioning would, from ``variables`` (a
    missing one is a ConfigError here: a push must not send a placeholder as a URL or a token).

    >>> expand_env({"url": "$TWIN_INFLUX__URL/query"}, {"TWIN_INFLUX__URL": "http://db"})
    {'url': 'http://db/query'}
    >>> expand_env(["$TWIN_X"], {})
    Traceback (most recent call last):
    ...
    twin_stream.errors.ConfigError: grafana push: variable TWIN_X is not set
    """
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                raise ConfigError(f"grafana push: variable {name} is not set")
            return variables[name]

        return re.sub(r"\$([A-Z][A-Z0-9_]*)", one, value)
    if isinstance(value, dict):
        return {k: expand_env(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, variables) for v in value]
    return value


@contextmanager
def _grafana(doing: str) -> Iterator[None]:
    with map_exceptions(GRAFANA_ERRORS, f"grafana: {doing}"):
        yield


def _get(read: Callable[[], Any]) -> Any | None:
    """What ``read`` answers, or None if Grafana has no such object (404)."""
    try:
        return read()
    except GrafanaClientError as e:
        if e.status_code == 404:
            return None
        raise


def push(api: GrafanaApi, variables: Mapping[str, str]) -> PushReport:
    """Create or update every twin-stream object in the Grafana behind ``api``.

    ``variables`` fill the provisioning's ``$TWIN_...`` placeholders (the datasource's URL,
    bucket and token, the contact point's webhook URL); every one of them is checked before
    the first request. Raises :class:`ConfigError` naming a missing variable and
    :class:`GrafanaError` for what Grafana refused or did not answer."""
    # Both placeholders' objects are filled first: a missing variable stops the push before
    # anything is sent.
    source = expand_env(datasource(), variables)
    secure = source.pop("secureJsonData")
    point = expand_env(contact_point().to_grafana(), variables)
    report = PushReport()
    with _grafana("folder"):
        report.actions["folder"] = _push_folder(api)
    with _grafana(f"datasource {source['uid']}"):
        report.actions["datasource"] = _push_datasource(api, source, secure)
    for dashboard in all_dashboards():
        with _grafana(f"dashboard {dashboard.uid}"):
            report.actions[f"dashboard {dashboard.uid}"] = _push_dashboard(api, dashboard)
    with _grafana("alert rule group"):
        report.actions["rule group"] = _push_rule_group(api)
    with _grafana(f"contact point {point['name']}"):
        report.actions["contact point"] = _push_contact_point(api, point)
    with _grafana("notification policy"):
        report.actions["notification policy"] = _push_policy(api)
    return report


def _push_folder(api: GrafanaApi) -> str:
    folder = _get(lambda: api.folder.get_folder(FOLDER_UID))
    if folder is None:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return "created"
    if folder.get("title") != FOLDER_TITLE:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        return "updated"
    return "unchanged"


def _push_datasource(api: GrafanaApi, source: dict[str, Any], secure: Any) -> str:
    current = _get(lambda: api.datasource.get_datasource_by_uid(source["uid"]))
    if current is None:
        api.datasource.create_datasource({**source, "secureJsonData": secure})
        return "created"
    if not contains(current, source):
        api.datasource.update_datasource_by_uid(source["uid"], {**source, "secureJsonData": secure})
        return "updated"
    return "unchanged"


def _push_dashboard(api: GrafanaApi, dashboard: Any) -> str:
    body = dashboard.to_grafana()
    current = _get(partial(api.dashboard.get_dashboard, dashboard.uid))
    if current is not None and contains(current.get("dashboard"), body):
        return "unchanged"
    api.dashboard.update_dashboard(
        {
            "dashboard": body,
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "twin-stream",
        }
    )
    return "created" if current is None else "updated"


def _push_rule_group(api: GrafanaApi) -> str:
    provisioning = api.alertingprovisioning
    group = rule_group()
    wanted = {
        "title": group.name,
        "folderUid": FOLDER_UID,
        "interval": group.interval_s,
        "rules": [
            {**r.to_grafana(), "folderUID": FOLDER_UID, "ruleGroup": group.name, "orgID": 1}
            for r in group.rules
        ],
    }
    current = _get(lambda: provisioning.get_rule_group(FOLDER_UID, group.name))
    if current is not None and contains(current, wanted):
        return "unchanged"
    provisioning.update_rule_group(FOLDER_UID, group.name, wanted)
    return "created" if current is None else "updated"


def _push_contact_point(api: GrafanaApi, point: dict[str, Any]) -> str:
    provisioning = api.alertingprovisioning
    existing = provisioning.get_contactpoints(name=point["name"]) or []
    if not existing:
        provisioning.create_contactpoint(point)
        return "created"
    if not contains(existing[0], point):
        provisioning.update_contactpoint(point["uid"], point)
        return "updated"
    return "unchanged"


def policy_route() -> dict[str, Any]:
    """twin-stream's subtree of the notification policy tree: one route for its folder's alerts,
    grouped and timed as :func:`~twin_stream.grafana.alert_rules.notification_policy` says, and
    its routes by severity under it."""
    policy = notification_policy().to_grafana()
    return {
        "receiver": policy["receiver"],
        "object_matchers": [list(POLICY_MATCHER)],
        "group_by": policy["group_by"],
        "group_wait": policy["group_wait"],
        "group_interval": policy["group_interval"],
        "repeat_interval": policy["repeat_interval"],
        "continue": False,
        "routes": policy["routes"],
    }


def _is_ours(route: Any) -> bool:
    return isinstance(route, Mapping) and list(POLICY_MATCHER) in [
        list(m) for m in route.get("object_matchers") or []
    ]


def with_policy_route(tree: Mapping[str, Any], route: Mapping[str, Any]) -> dict[str, Any]:
    """``tree`` with twin-stream's ``route`` in it: in place of the route it replaces (the one
    with :data:`POLICY_MATCHER`), or first. Nothing else of the tree changes.

    >>> tree = {"receiver": "ops", "routes": [{"receiver": "pager", "object_matchers": []}]}
    >>> [r["receiver"] for r in with_policy_route(tree, {"receiver": "twin",
    ...     "object_matchers": [list(POLICY_MATCHER)]})["routes"]]
    ['twin', 'pager']
    """
    routes = list(tree.get("routes") or [])
    mine = [i for i, r in enumerate(routes) if _is_ours(r)]
    if mine:
        routes[mine[0]] = dict(route)
        routes = [r for i, r in enumerate(routes) if i not in mine[1:]]  # stray copies go
    else:
        routes.insert(0, dict(route))
    return {**tree, "routes": routes}


def _push_policy(api: GrafanaApi) -> str:
    provisioning = api.alertingprovisioning
    wanted = policy_route()
    tree = provisioning.get_notification_policy_tree()
    if not isinstance(tree, Mapping) or "receiver" not in tree:
        raise GrafanaError(f"grafana answered no notification policy tree: {tree!r}")
    current = [r for r in tree.get("routes") or [] if _is_ours(r)]
    if len(current) == 1 and contains(current[0], wanted):
        return "unchanged"
    # The tree is the organisation's: X-Disable-Provenance keeps it editable in Grafana's UI (a
    # plain provisioning PUT would mark the whole tree provisioned and lock every other route).
    provisioning.set_notification_policy_tree(
        with_policy_route(tree, wanted), disable_provenance=True
    )
    return "updated" if current else "created"
