"""The audit trail of the twin API: :func:`audit` records a change a view accepted on
``twin.audit``, and ``GET /audit?device=&since=`` reads the trail back.

* :func:`audit` (for every view that changes something: desired state, alert acknowledgements
  and shelving) writes one :class:`~twin_stream.domain.records.AuditRecord`: who (the caller's
  :class:`~twin_stream.auth.Principal`, set by :mod:`twin_stream.worker.web_auth`), when, the
  device, the state before and after, and the command id. The sink stores each record as a point
  of the ``audit`` measurement, for dashboards.
* ``GET /audit`` (role ``viewer``): the records, oldest first; ``device`` keeps one device's,
  ``since`` (ISO 8601, with a time zone) those made from then on; ``limit`` (default 1000, at
  most 10000) keeps the newest. 422 for a bad parameter.

Design: the worker keeps no audit state. ``GET /audit`` reads the topic itself (kept forever:
``retention.ms=-1``, :mod:`twin_stream.domain.retention`) with a short-lived
consumer outside any group, from the start (or from ``since``, found by the records' Kafka
timestamps) to the end offsets it saw when asked, and keeps the asked device's records. The
alternative, querying the sink's ``audit`` measurement in InfluxDB, would make the API depend on
InfluxDB and lag behind the sink: a change just accepted would not show yet. The topic is the
trail; the measurement is its copy for Grafana. A read costs what the trail holds (human changes,
a few per device and day), not the telemetry's volume.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import faust
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from twin_stream.domain.records import AuditRecord
from twin_stream.domain.topics import DEVICE_ID_PATTERN
from twin_stream.worker.web_auth import principal_of

__all__ = ["audit", "read_audit", "read_records", "register_audit_views"]

DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10_000
_DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN)


async def audit(
    topic: Any,
    request: Any,
    *,
    action: str,
    device_id: str,
    old: dict[str, Any],
    new: dict[str, Any],
    command_id: str | None = None,
    subject: str | None = None,
    device_type: str | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    """Record a change the caller of ``request`` made, on the audit topic; returns the record.

    ``action`` names the change (``set_desired``, ``alert_ack``, ``alert_shelve``), ``old`` and
    ``new`` are the state before and after it, ``subject`` what it is about within the device
    (an alert's id)."""
    principal = principal_of(request)
    record = AuditRecord(
        audit_id=uuid.uuid4().hex,
        at=now or datetime.now(UTC),
        actor=principal.name,
        role=principal.role,
        action=action,
        device_id=device_id,
        device_type=device_type,
        old=old,
        new=new,
        command_id=command_id,
        subject=subject,
    )
    await topic.send(key=device_id.encode(), value=record.model_dump_json().encode())
    return record


async def read_records(
    bootstrap: str,
    topic: str,
    *,
    since: datetime | None = None,
    timeout_s: float = 20.0,
    options: Mapping[str, Any] | None = None,
) -> list[tuple[bytes | None, bytes]]:
    """Every record (key, value) on ``topic`` up to its end now (from ``since``, by record
    time), partition by partition; ``options`` are the consumer's security settings
    (aiokafka's names). Tombstones are left out."""
    # Subscribed outside any group, the consumer is given every partition of the topic.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(options or {}),
    )
    deadline = time.monotonic() + timeout_s
    await consumer.start()
    try:
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partitions of {topic} assigned in {timeout_s:.0f} s")
            await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment())
        end = await consumer.end_offsets(tps)
        if since is None:
            await consumer.seek_to_beginning(*tps)
        else:
            # The producer stamps a record after the change's own time: seeking to the first
            # record stamped at ``since`` or later misses none made from then on.
            stamped = await consumer.offsets_for_times(
                dict.fromkeys(tps, int(since.timestamp() * 1000))
            )
            for tp in tps:
                found = stamped.get(tp)
                consumer.seek(tp, found.offset if found is not None else end[tp])
        records: list[tuple[bytes | None, bytes]] = []
        pending = {tp for tp in tps if await consumer.position(tp) < end[tp]}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s:.0f} s")
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset < end[tp] and message.value is not None:
                        records.append((message.key, message.value))
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
    finally:
        await consumer.stop()
    return records


async def read_audit(
    bootstrap: str,
    topic: str,
    *,
    device: str | None = None,
    since: datetime | None = None,
    timeout_s: float = 20.0,
    options: Mapping[str, Any] | None = None,
) -> list[AuditRecord]:
    """The audit records on ``topic`` (of ``device``, from ``since``), oldest first;
    ``options`` are the consumer's security settings (aiokafka's names)."""
    key = device.encode() if device is not None else None
    records = []
    for found, value in await read_records(
        bootstrap, topic, since=since, timeout_s=timeout_s, options=options
    ):
        if key is not None and found != key:
            continue
        record = AuditRecord.model_validate_json(value)
        if since is None or record.at >= since:
            records.append(record)
    return sorted(records, key=lambda r: (r.at, r.audit_id))


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    since = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    if since.tzinfo is None:
        raise ValueError("since needs a time zone (e.g. 2026-11-26T12:00:00Z)")
    return since


def register_audit_views(app: faust.App, bootstrap: str, audit_topic: Any) -> None:
    """``GET /audit``, reading ``audit_topic`` on the Kafka at ``bootstrap``, logged in as the
    worker is (its ``broker_credentials``)."""
    topic_name = audit_topic.get_topic_name()
    options = credentials_to_aiokafka_auth(app.conf.broker_credentials)

    @app.page("/audit")
    class AuditTrail(faust.web.View):
        async def get(self, request: Any) -> Any:
            device = request.query.get("device") or None
            if device is not None and not _DEVICE_ID_RE.match(device):
                return self.json({"error": f"device: not a device id: {device!r}"}, status=422)
            try:
                since = _parse_since(request.query.get("since"))
                limit = int(request.query.get("limit", DEFAULT_LIMIT))
                if not 1 <= limit <= MAX_LIMIT:
                    raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
            except ValueError as e:
                return self.json({"error": f"invalid query: {e}"}, status=422)
            try:
                records = await read_audit(
                    bootstrap, topic_name, device=device, since=since, options=options
                )
            except (TimeoutError, OSError, KafkaError) as e:
                return self.json({"error": f"the audit trail is unavailable: {e}"}, status=503)
            except ValidationError as e:
                return self.json({"error": f"an unreadable audit record: {e}"}, status=500)
            body = [r.model_dump(mode="json") for r in records[-limit:]]
            return self.bytes(orjson.dumps(body), content_type="application/json")
