"""The heartbeat timer: silent devices and commands past their time.

Every ``interval_s`` seconds, for each device this worker has in memory:

* a device online but silent past its heartbeat timeout gets a missed-heartbeat notice, sent
  to the status topic as a will would be: the status agent of the device's owner applies it,
  saves the offline alert it opens, and a redelivery of the notice opens the same alert (it
  is stamped with the overdue moment). A notice Kafka did not take is sent again at the next
  check;
* commands not applied in time expire: their changes leave the desired document, and the
  twin's view is produced (the table is updated with the device's next event: Faust tables
  are written while handling an event).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust

from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.publishing import Publisher

__all__ = ["check_heartbeats", "register_heartbeats"]

log = logging.getLogger(__name__)


async def check_heartbeats(
    devices: DeviceCache, status: Any, publisher: Publisher, *, now: datetime, retry_s: float
) -> None:
    """One turn of the timer at ``now``: notices on ``status`` (a Faust topic), expired
    commands through ``publisher``. ``retry_s`` is when a notice not sent is tried again (the
    log says so)."""
    for device_id, state in devices.items():
        notice = state.missed_heartbeat(now=now)
        if notice is not None:
            try:
                await status.send(key=device_id.encode(), value=notice.model_dump_json().encode())
            except Exception:  # Kafka away: the notice is sent again at the next check
                state.heartbeat_sent = None
                log.warning(
                    "missed-heartbeat notice of %s not sent; trying again in %g s",
                    device_id,
                    retry_s,
                    exc_info=True,
                )
        out = state.on_heartbeat(now=now)
        if out.twin_changed:  # the table is updated with the device's next event
            await publisher.publish_outputs(device_id, state, out)


def register_heartbeats(
    app: faust.App, status: Any, devices: DeviceCache, publisher: Publisher, *, interval_s: float
) -> Any:
    """Add the heartbeat timer to ``app``, checking every ``interval_s`` seconds (holding the
    cache's lock: :attr:`DeviceCache.lock`). Returns the timer."""

    @app.timer(interval=interval_s)
    async def heartbeats() -> None:
        async with devices.lock:
            await check_heartbeats(
                devices, status, publisher, now=datetime.now(UTC), retry_s=interval_s
            )

    return heartbeats
