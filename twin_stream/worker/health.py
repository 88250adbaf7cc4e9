"""Whether a worker is scoring: ``GET /ready`` (200 or 503) and ``GET /live``.

A worker's web server answers from start to stop, so a twin API that answers says nothing about
scoring: while the group rebalances, Faust pauses every stream, and while a table recovers from
its changelog the worker's devices wait. ``/ready`` is 200 only when this worker has partitions
assigned, is not rebalancing, has no table in recovery and its streams flow; otherwise 503 with
what it waits for. The demo, the tests, the chaos suite and the compose healthcheck wait on it.
``/live`` is 200 while the process serves at all (for a liveness probe that restarts a stuck
process, never for "ready").

Neither shows data, so neither needs a token (a load balancer's probe has none).

>>> class App:  # what readiness reads of a Faust app
...     rebalancing, in_recovery = False, False
...     class flow_control:
...         is_active = staticmethod(lambda: True)
...     class consumer:
...         assignment = staticmethod(lambda: {("twin.telemetry", 0)})
>>> readiness(App())
(True, {'ready': True, 'assigned_partitions': 1, 'waiting_for': []})
>>> App.rebalancing = True
>>> readiness(App())[1]["waiting_for"]
['rebalance']
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.exceptions import ConsumerNotStarted

__all__ = ["PUBLIC_PATHS", "readiness", "register_health"]

#: The paths served without a token (:mod:`twin_stream.worker.views` guards every other one).
PUBLIC_PATHS = frozenset({"/ready", "/live"})


def readiness(app: Any) -> tuple[bool, dict[str, Any]]:
    """Whether ``app`` scores now, and what it waits for if not."""
    waiting: list[str] = []
    try:
        assigned = len(app.consumer.assignment())
    except ConsumerNotStarted:  # early in start-up: nothing assigned yet
        assigned = 0
    if not assigned:
        waiting.append("partitions")
    if app.rebalancing:
        waiting.append("rebalance")
    if app.in_recovery:
        waiting.append("table recovery")
    if not app.flow_control.is_active():
        waiting.append("streams paused")
    ready = not waiting
    return ready, {"ready": ready, "assigned_partitions": assigned, "waiting_for": waiting}


def register_health(app: faust.App) -> None:
    """Add ``GET /ready`` and ``GET /live`` to the worker's web server."""

    @app.page("/ready")
    class Ready(faust.web.View):
        async def get(self, request: Any) -> Any:
            ready, body = readiness(app)
            return self.bytes(
                orjson.dumps(body), status=200 if ready else 503, content_type="application/json"
            )

    @app.page("/live")
    class Live(faust.web.View):
        async def get(self, request: Any) -> Any:
            return self.bytes(b'{"live":true}', content_type="application/json")
