"""The twin API, served by every worker (Faust web views on aiohttp).

* ``GET /twins``: every twin, gathered from every worker that owns partitions;
* ``GET /twins/{device_id}``: one twin, answered by the worker that owns the device;
* ``GET /alerts?state=open``: open alerts of every device;
* ``PUT /twins/{device_id}/desired``: change desired state; produces a command on
  ``twin.commands`` (the bridge delivers it to the device). 404 for an unknown device,
  422 for an invalid body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from pydantic import ValidationError
from yarl import URL

from twin_stream.domain.events import Command
from twin_stream.domain.messages import DesiredSettings
from twin_stream.worker.processing import DeviceState, twin_view

__all__ = ["register_views"]

LOCAL = "local"  # ?scope=local: only this worker's twins (used when gathering)


def register_views(
    app: faust.App,
    config: Any,
    twins: Any,
    commands_topic: Any,
    load: Callable[[str], DeviceState],
) -> None:
    def local_views() -> list[dict[str, Any]]:
        views = []
        for key, value in list(twins.items()):
            if value:
                state = load(key.decode())
                views.append(twin_view(state.twin, state.open_alerts(), datetime.now(UTC)))
        return views

    async def gather(path: str) -> list[dict[str, Any]]:
        """This worker's twins plus every other worker's (asked with ?scope=local)."""
        me = URL(app.conf.canonical_url)
        hosts = {URL(h) for h in app.router.table_metadata(twins.name)} - {me}
        views = local_views()

        async def ask(host: URL) -> list[dict[str, Any]]:
            url = host.with_path(path).with_query(scope=LOCAL)
            async with app.http_client.get(url) as response:
                response.raise_for_status()
                body: list[dict[str, Any]] = orjson.loads(await response.read())
                return body

        for part in await asyncio.gather(*(ask(h) for h in hosts)):
            views.extend(part)
        return sorted(views, key=lambda v: str(v["device_id"]))

    def unknown(web: Any, device_id: str) -> Any:
        return web.json({"error": f"unknown device {device_id!r}"}, status=404)

    @app.page("/twins")
    class TwinList(faust.web.View):
        async def get(self, request: Any) -> Any:
            if request.query.get("scope") == LOCAL:
                return self.bytes(orjson.dumps(local_views()), content_type="application/json")
            return self.bytes(orjson.dumps(await gather("/twins")), content_type="application/json")

    @app.page("/alerts")
    class AlertList(faust.web.View):
        async def get(self, request: Any) -> Any:
            views = local_views() if request.query.get("scope") == LOCAL else await gather("/twins")
            wanted = request.query.get("state")
            alerts = [
                a
                for v in views
                for a in v.get("open_alerts", [])
                if wanted is None or a["state"] == wanted
            ]
            return self.bytes(orjson.dumps(alerts), content_type="application/json")

    @app.page("/twins/{device_id}")
    class TwinDetail(faust.web.View):
        @app.table_route(table=twins, match_info="device_id")  # type: ignore[arg-type]
        async def get(self, request: Any, device_id: str) -> Any:
            if not twins.get(device_id.encode()):
                return unknown(self, device_id)
            state = load(device_id)
            view = twin_view(state.twin, state.open_alerts(), datetime.now(UTC))
            return self.bytes(orjson.dumps(view), content_type="application/json")

    @app.page("/twins/{device_id}/desired")
    class TwinDesired(faust.web.View):
        async def put(self, request: Any, device_id: str) -> Any:
            body = await request.read()
            owner = app.router.key_store(twins.name, device_id.encode())
            if URL(str(owner)) != URL(app.conf.canonical_url):
                # Faust's own routing drops request bodies: forward this one ourselves.
                url = URL(str(owner)).with_path(request.path)
                async with app.http_client.put(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    return self.bytes(
                        await response.read(),
                        status=response.status,
                        content_type="application/json",
                    )
            try:
                desired = DesiredSettings.model_validate_json(body)
            except ValidationError as e:
                return self.json(
                    {
                        "error": "invalid desired state",
                        "details": e.errors(include_url=False, include_input=False),
                    },
                    status=422,
                )
            if not twins.get(device_id.encode()):
                return unknown(self, device_id)
            # The change travels as an event: the owner's commands agent applies it to the twin
            # (tables are written by agents), and the bridge delivers it to the device.
            state = load(device_id)
            command = Command.create(
                device_id, "set_desired", desired=desired, now=datetime.now(UTC)
            )
            command = command.model_copy(update={"twin_version": state.twin.version + 1})
            await commands_topic.send(
                key=device_id.encode(), value=command.model_dump_json().encode()
            )
            return self.bytes(
                command.model_dump_json().encode(), status=202, content_type="application/json"
            )
