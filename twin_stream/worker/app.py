"""The Faust app: agents that keep each device's twin and models, and the twin API.

Topics are keyed by device_id and co-partitioned, so one worker owns a device's twin and models
(tables backed by changelog topics, stored with rocksdict). Several ``twin-stream worker``
processes share the partitions; each has its own data dir and web port.

* ``telemetry`` agent: de-duplicate by seq, update the twin, score, predict, alert;
  produce ``scores``, ``predictions``, ``alerts`` and the twin's new view on ``twins``;
* ``status`` / ``reported`` agents: connectivity and reported settings;
* ``dlq`` agent: count invalid payloads in the device's data-quality counters;
* a timer marks silent devices offline (heartbeat timeout);
* models (detector + alert policy) are checkpointed to their table every
  ``checkpoint_every`` events or ``checkpoint_interval_s`` seconds per device, not on every
  event; a restarted or rebalanced worker resumes each device from its last checkpoint.

The twin API (``views``): GET /twins, GET /twins/{id}, GET /alerts?state=open,
PUT /twins/{id}/desired. Requests for one device go to the worker that owns it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson

from twin_stream.domain.topics import kafka_topics
from twin_stream.worker.processing import DeviceState, Outputs, twin_view

__all__ = ["WorkerConfig", "create_app"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    data_dir: Path
    web_port: int
    web_host: str = "127.0.0.1"
    topic_prefix: str = "twin"
    partitions: int = 6
    checkpoint_every: int = 200
    checkpoint_interval_s: float = 30.0
    heartbeat_check_s: float = 10.0


def create_app(config: WorkerConfig) -> faust.App:
    """Build the worker app (agents, tables, timer, views) for one process."""
    names = kafka_topics(config.topic_prefix)
    app_id = f"{config.topic_prefix}-worker"  # the consumer group the workers share
    app = faust.App(
        app_id,
        broker=f"kafka://{config.bootstrap}",
        store="rocksdb://",
        datadir=str(config.data_dir),
        web_port=config.web_port,
        web_host=config.web_host,
        # A worker reachable only on loopback stays there; one advertised by name (compose,
        # several machines) listens on every interface.
        web_bind=config.web_host if config.web_host in ("127.0.0.1", "localhost") else "0.0.0.0",
        canonical_url=f"http://{config.web_host}:{config.web_port}",
        topic_partitions=config.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        # Every reading makes a score: let the producer gather them into batches (Faust's
        # default of 0 sends one produce request per record).
        producer_linger=0.01,
        autodiscover=False,
        web_in_thread=False,
    )

    def topic(kind: str) -> Any:
        return app.topic(
            names[kind], key_type=bytes, value_type=bytes, partitions=config.partitions
        )

    topics = {kind: topic(kind) for kind in names}
    # bytes keys and values: Faust stores them raw (its default would be JSON).
    twins = app.Table(
        "twins", default=None, partitions=config.partitions, key_type=bytes, value_type=bytes
    )
    models = app.Table(
        "models", default=None, partitions=config.partitions, key_type=bytes, value_type=bytes
    )
    cache: dict[str, DeviceState] = {}
    last_checkpoint: dict[str, float] = {}

    def peek(device_id: str) -> DeviceState:
        """The state for a read-only view: never cached, so a worker that does not own the
        device cannot keep a stale copy of it."""
        state = cache.get(device_id)
        if state is not None:
            return state
        key = device_id.encode()
        return DeviceState.restore(device_id, twins.get(key), models.get(key))

    def load(device_id: str) -> DeviceState:
        """The state to update: cached while this worker owns the device."""
        state = cache.get(device_id)
        if state is None:
            state = cache[device_id] = peek(device_id)
        return state

    saved_version: dict[str, int] = {}

    def save(device_id: str, state: DeviceState, out: Outputs, *, reading: bool) -> None:
        """Write the twin and the models to their tables (and so to their changelogs).

        A reading changes only the twin's latest values and counters: the twin is written
        with the models, at checkpoints. Anything else (connectivity, settings, desired
        state, dead letters) and any version change is written at once.
        """
        key = device_id.encode()
        now = time.monotonic()
        due = (
            state.events_since_checkpoint >= config.checkpoint_every
            or now - last_checkpoint.get(device_id, 0.0) >= config.checkpoint_interval_s
        )
        changed_version = saved_version.get(device_id) != state.twin.version
        if out.twin_changed and (not reading or changed_version or due):
            twins[key] = state.twin.model_dump_json().encode()
            saved_version[device_id] = state.twin.version
        if reading and state.monitor is not None and due:
            models[key] = state.models_bytes()
            state.events_since_checkpoint = 0
            last_checkpoint[device_id] = now

    async def publish(device_id: str, state: DeviceState, out: Outputs) -> None:
        key = device_id.encode()
        for score in out.scores:
            await topics["scores"].send(key=key, value=score.to_json())
        for prediction in out.predictions:
            await topics["predictions"].send(key=key, value=prediction.model_dump_json().encode())
        for alert in out.alerts:
            await topics["alerts"].send(key=key, value=alert.model_dump_json().encode())
        # The twin's view goes out when something people look at changed: its version
        # (connectivity, settings, firmware), its alerts or its data-quality counters.
        if out.twin_changed and (
            out.alerts
            or out.outcome not in ("accepted", "reordered")
            or state.twin.version != _published.get(device_id)
            or not out.scores
        ):
            _published[device_id] = state.twin.version
            view = twin_view(state.twin, state.open_alerts(), datetime.now(UTC))
            await topics["twins"].send(key=key, value=orjson.dumps(view))

    _published: dict[str, int] = {}

    def handler(kind: str) -> Any:
        async def agent(stream: Any) -> None:
            async for event in stream.events():
                device_id = event.key.decode()
                state = load(device_id)
                now = datetime.now(UTC)
                try:
                    if kind == "telemetry":
                        # The record's timestamp is when the bridge received the reading: the
                        # clock-skew check compares the device's clock with it, so a backlog
                        # read late is not mistaken for a device clock that is off.
                        received = datetime.fromtimestamp(event.message.timestamp, UTC)
                        out = state.on_telemetry(event.value, now=now, received_at=received)
                    elif kind == "status":
                        out = state.on_status(event.value, now=now)
                    elif kind == "reported":
                        out = state.on_reported(event.value, now=now)
                    elif kind == "commands":
                        out = state.on_command(event.value, now=now)
                    else:
                        out = state.on_dead_letter()
                except ValueError as e:  # includes pydantic's ValidationError
                    log.error(
                        "unprocessable %s record for %s at offset %s: %s",
                        kind,
                        device_id,
                        event.message.offset,
                        e,
                    )
                    continue
                save(device_id, state, out, reading=kind == "telemetry")
                await publish(device_id, state, out)

        agent.__name__ = f"{kind}_agent"
        return agent

    for kind in ("telemetry", "status", "reported", "commands"):
        app.agent(topics[kind], name=f"{app_id}.{kind}")(handler(kind))

    @app.agent(topics["dlq"], name=f"{app_id}.dlq")
    async def dead_letters(stream: Any) -> None:
        async for event in stream.events():
            if event.key:  # a dead letter whose device is known
                device_id = event.key.decode()
                state = load(device_id)
                out = state.on_dead_letter()
                save(device_id, state, out, reading=False)
                await publish(device_id, state, out)  # the twin's invalid counter moved

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def forget_on_assignment(app: Any, assigned: Any = None, **_: Any) -> None:
        cache.clear()  # what this worker owns now is loaded afresh from the tables
        saved_version.clear()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_cached_devices(app: Any, revoked: Any = None, **_: Any) -> None:
        # Partitions may move: whoever owns a device after the rebalance loads it from the
        # tables (its last checkpoint), so a stale copy is never used. (Faust tables can only
        # be written while handling an event, so nothing is saved here.)
        cache.clear()

    @app.timer(interval=config.heartbeat_check_s)
    async def heartbeats() -> None:
        now = datetime.now(UTC)
        for device_id, state in list(cache.items()):
            out = state.on_heartbeat(now=now)
            if out.twin_changed:  # the table is updated with the device's next event
                await publish(device_id, state, out)

    from twin_stream.worker.views import register_views

    register_views(app, config, twins, topics["commands"], peek)
    app.twin_cache = cache  # type: ignore[attr-defined]
    return app


def alerts_of(views: list[dict[str, Any]], state: str | None) -> list[dict[str, Any]]:
    """Every open alert in a list of twin views (the API's /alerts)."""
    alerts = [a for v in views for a in v.get("open_alerts", [])]
    if state is not None:
        alerts = [a for a in alerts if a["state"] == state]
    return alerts
