"""`twin-stream grafana push` end to end against a local HTTP server that records the requests,
since no Grafana server can run on these machines. The server keeps what it is sent (adding
fields of its own, as Grafana does) and answers reads from it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from typer.testing import CliRunner

from twin_stream.cli import app
from twin_stream.grafana.alert_rules import WEBHOOK_URL_ENV, notification_policy, rule_group
from twin_stream.grafana.push import policy_route

TOKEN = "glsa_test_token"


class RecordingGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, Any]] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, in the same order
        self.objects: dict[str, Any] = {"/api/v1/provisioning/policies": {"receiver": "default"}}
        self.next_id = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m != "GET"]


class _Handler(BaseHTTPRequestHandler):
    server: RecordingGrafana

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "unauthorized"})
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        store, path = self.server.objects, url.path
        self.server.requests.append((self.command, self.path, body))
        self.server.headers.append(dict(self.headers.items()))
        stamp = {"id": self.server.next_id, "version": self.server.next_id}
        self.server.next_id += 1
        if self.command == "GET":
            if path == "/api/v1/provisioning/contact-points":
                name = parse_qs(url.query).get("name", [None])[0]
                points = [v for k, v in store.items() if k.startswith(path + "/")]
                return self._reply(200, [p for p in points if name in (None, p["name"])])
            if path in store:
                return self._reply(200, store[path])
            return self._reply(404, {"message": "not found"})
        if path == "/api/folders":
            store[f"/api/folders/{body['uid']}"] = {**body, **stamp}
        elif path == "/api/datasources":
            store[f"/api/datasources/uid/{body['uid']}"] = {**body, **stamp}
        elif path.startswith("/api/datasources/uid/"):
            store[path] = {**body, **stamp}
        elif path == "/api/dashboards/db":
            dashboard = {**body["dashboard"], **stamp}
            store[f"/api/dashboards/uid/{dashboard['uid']}"] = {
                "dashboard": dashboard,
                "meta": {"folderUid": body["folderUid"]},
            }
        elif path == "/api/v1/provisioning/contact-points":
            store[f"{path}/{body['uid']}"] = body
        elif path.startswith("/api/v1/provisioning/"):
            rules = body.get("rules")
            if rules is not None:  # Grafana adds fields to each rule it stores
                body = {
                    **body,
                    "rules": [{**r, "id": i, "provenance": "api"} for i, r in enumerate(rules)],
                }
            store[path] = body
        else:
            return self._reply(404, {"message": f"no route {path}"})
        return self._reply(200, {"status": "success", **stamp})

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture
def grafana() -> Iterator[RecordingGrafana]:
    server = RecordingGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def push(grafana: RecordingGrafana, **env: str) -> Any:
    return CliRunner().invoke(
        app,
        ["grafana", "push", "--url", grafana.url],
        env={
            "TWIN_GRAFANA__TOKEN": TOKEN,
            "TWIN_INFLUX__URL": "http://influxdb:8086",
            "TWIN_INFLUX__BUCKET": "twin",
            "TWIN_INFLUX__TOKEN": "s3cret",
            WEBHOOK_URL_ENV: "http://hooks.example/twin",
            **env,
        },
    )


def test_grafana_push_against_a_recording_http_server_creates_everything_then_changes_nothing(
    grafana: RecordingGrafana,
) -> None:
    first = push(grafana)
    assert first.exit_code == 0, first.output
    written = {p.split("?")[0] for _, p in grafana.writes()}
    assert written == {
        "/api/folders",
        "/api/datasources",
        "/api/dashboards/db",
        "/api/v1/provisioning/folder/twin-stream/rule-groups/twin-stream",
        "/api/v1/provisioning/contact-points",
        "/api/v1/provisioning/policies",
    }
    assert len([p for _, p in grafana.writes() if p == "/api/dashboards/db"]) == 3
    store = grafana.objects
    source = store["/api/datasources/uid/twin-stream-influxql"]
    assert source["url"] == "http://influxdb:8086"  # placeholders expanded from the environment
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token s3cret"
    group = store["/api/v1/provisioning/folder/twin-stream/rule-groups/twin-stream"]
    assert [r["uid"] for r in group["rules"]] == [r.uid for r in rule_group().rules]
    assert all(r["folderUID"] == "twin-stream" for r in group["rules"])
    point = store["/api/v1/provisioning/contact-points/twin-webhook"]
    assert point["settings"]["url"] == "http://hooks.example/twin"

    before, writes_before = len(grafana.requests), len(grafana.writes())
    second = push(grafana)
    assert second.exit_code == 0, second.output
    assert grafana.writes()[writes_before:] == []
    assert [m for m, _, _ in grafana.requests[before:]] == ["GET"] * (
        len(grafana.requests) - before
    )
    assert "0 object(s) changed" in second.output


def test_a_changed_object_is_updated_and_only_that_one(grafana: RecordingGrafana) -> None:
    assert push(grafana).exit_code == 0
    grafana.objects["/api/dashboards/uid/twin-alerts"]["dashboard"]["title"] = "edited by hand"
    before = len(grafana.writes())
    assert push(grafana).exit_code == 0
    assert grafana.writes()[before:] == [("POST", "/api/dashboards/db")]
    assert grafana.objects["/api/dashboards/uid/twin-alerts"]["dashboard"]["title"] == (
        "twin-stream: alerts"
    )


def test_a_missing_secret_is_a_clear_error_and_nothing_is_sent_as_a_placeholder(
    grafana: RecordingGrafana,
) -> None:
    result = CliRunner().invoke(
        app,
        ["grafana", "push", "--url", grafana.url],
        env={"TWIN_GRAFANA__TOKEN": TOKEN, "TWIN_INFLUX__URL": ""},
    )
    assert result.exit_code == 1
    assert "TWIN_INFLUX__URL" in result.output
    assert "Traceback" not in result.output
    assert not any("$TWIN" in json.dumps(body) for _, _, body in grafana.requests)


def test_a_wrong_token_fails_loudly(grafana: RecordingGrafana) -> None:
    result = CliRunner().invoke(
        app, ["grafana", "push", "--url", grafana.url], env={"TWIN_GRAFANA__TOKEN": "nope"}
    )
    assert result.exit_code == 1  # one clear line, not a traceback
    assert "Traceback" not in result.output
    assert not grafana.writes()


#: An organisation's notification policy tree before twin-stream's first push, as Grafana
#: answers it: its own root receiver and timings, a route of another team's, a catch-all.
FOREIGN_TREE: dict[str, Any] = {
    "receiver": "ops-email",
    "group_by": ["grafana_folder", "alertname"],
    "group_wait": "45s",
    "group_interval": "10m",
    "repeat_interval": "12h",
    "routes": [
        {
            "receiver": "db-pager",
            "object_matchers": [["team", "=", "database"]],
            "group_wait": "5s",
            "mute_time_intervals": ["weekends"],
            "routes": [{"receiver": "db-oncall", "object_matchers": [["severity", "=", "page"]]}],
        },
        {"receiver": "ops-email", "continue": True},
    ],
    "provenance": "",
}


def test_push_manages_only_its_own_route_of_the_notification_policy_tree(
    grafana: RecordingGrafana,
) -> None:
    path = "/api/v1/provisioning/policies"
    grafana.objects[path] = json.loads(json.dumps(FOREIGN_TREE))
    assert push(grafana).exit_code == 0
    tree = grafana.objects[path]
    ours = tree["routes"][0]
    # twin-stream's subtree: first, so that the catch-all cannot take its alerts...
    assert ours["object_matchers"] == [["grafana_folder", "=", "twin-stream"]]
    assert ours["receiver"] == "twin-stream-webhook"
    assert ours == policy_route()  # with twin-stream's own routes under it
    assert ours["routes"] == notification_policy().to_grafana()["routes"]
    # ... and everything else exactly as it was: the root's settings and the foreign routes.
    assert {k: v for k, v in tree.items() if k != "routes"} == {
        k: v for k, v in FOREIGN_TREE.items() if k != "routes"
    }
    assert tree["routes"][1:] == FOREIGN_TREE["routes"]
    # The tree stays editable in Grafana's UI (not marked provisioned by the push).
    puts = [i for i, (m, p, _) in enumerate(grafana.requests) if m == "PUT" and p == path]
    assert [grafana.headers[i].get("X-Disable-Provenance") for i in puts] == ["true"]

    # Another team edits its route after the push: a second push changes nothing.
    tree["routes"][1]["group_wait"] = "15s"
    before = len(grafana.writes())
    assert push(grafana).exit_code == 0
    assert grafana.writes()[before:] == []
    assert grafana.objects[path]["routes"][1]["group_wait"] == "15s"

    # Someone edits twin-stream's route by hand and moves it last: the push puts it back as
    # it should be, where it now is, and leaves the others alone.
    routes = grafana.objects[path]["routes"]
    routes.append(routes.pop(0))
    routes[-1]["receiver"] = "someone-else"
    edited = json.loads(json.dumps(routes[:-1]))
    assert push(grafana).exit_code == 0
    routes = grafana.objects[path]["routes"]
    assert routes[:-1] == edited
    assert routes[-1]["receiver"] == "twin-stream-webhook"
    assert routes[-1]["object_matchers"] == [["grafana_folder", "=", "twin-stream"]]
