"""What the fleet learned from its failures: every device type's
:class:`~twin_stream.domain.detection.rul.FleetModel`, learned by one worker, read by every one.

A failure an engineer records (``twin-stream failures add``, ``POST /twins/{id}/failures``)
travels on ``twin.lifecycle`` to the device's owner, which sends the device's health-index
history up to the failure to ``twin.fleet`` as a
:class:`~twin_stream.domain.records.FleetLesson`, keyed by the device type. So each type's
lessons are on one partition, and the worker that owns it learns the type's model (the
``fleet_lessons`` agent of :func:`register_fleet`) into the ``fleet`` table: the model is
checkpointed in that table's changelog as the device models are in theirs, restored by the
next owner after a rebalance or a crash, and a lesson read twice is learned once (its
``failure_id``). A lesson that does not validate, or that the model refuses, goes to the
dead-letter topic with the reason.

Every worker predicts with every type's model (its devices are of every type): it reads the
table's changelog (compacted: one record a type) at start and every ``refresh_s`` seconds into
:class:`FleetModels`. A model that does not restore is logged and the previous one kept.

>>> from datetime import datetime, timezone
>>> from twin_stream.domain.records import FleetLesson
>>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> lesson = FleetLesson(device_id="chiller-0001", device_type="mri_chiller", failed_at=at,
...                      failed_after_h=3.0, history=[(0.0, 0.1), (1.0, 0.5), (2.0, 2.0)],
...                      detector_version="ts-detector/4")
>>> state = learn_lesson(None, lesson)
>>> learn_lesson(state, lesson) is None  # the same failure again: nothing new
True
>>> models = FleetModels()
>>> models.load([(lesson.key, state)])
1
>>> models.get("mri_chiller").failures, models.get("infusion_pump")
(1, None)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from twin_stream.bridge.routing import dead_letter, rejection_reason
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.records import FleetLesson
from twin_stream.errors import PayloadRejected
from twin_stream.worker.audit_views import read_records

__all__ = ["FleetModels", "learn_lesson", "register_fleet"]

log = logging.getLogger(__name__)


def learn_lesson(state: bytes | None, lesson: FleetLesson) -> bytes | None:
    """The type's model state (``fleet`` table value, JSON) after learning ``lesson``; None
    when it teaches nothing new (learned before, or no point before the failure). ValueError
    (with the reason) for a state or lesson the model refuses."""
    model = FleetModel() if state is None else FleetModel.from_json(orjson.loads(state))
    if not model.learn(list(lesson.history), lesson.failed_after_h, lesson.failure_id):
        return None
    return orjson.dumps(model.to_json())


class FleetModels:
    """Each device type's fleet model, as the ``fleet`` table's changelog holds it."""

    def __init__(self) -> None:
        self.models: dict[str, FleetModel] = {}

    def get(self, device_type: str) -> FleetModel | None:
        """The type's model, None while its fleet has no recorded failure."""
        return self.models.get(device_type)

    @property
    def failures(self) -> int:
        """Failures learned, over every type."""
        return sum(model.failures for model in self.models.values())

    def load(self, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Take each type's latest model from the changelog's records (in offset order);
        returns the failures the models hold. A record that does not restore is logged and
        the type keeps the model it had."""
        latest: dict[str, bytes] = {}
        for key, value in records:
            if key is not None:
                latest[key.decode(errors="replace")] = value
        models = dict(self.models)
        for device_type, value in latest.items():
            try:
                models[device_type] = FleetModel.from_json(orjson.loads(value))
            except (ValueError, orjson.JSONDecodeError) as e:
                log.error(
                    "the fleet model of %s does not restore, kept as it was: %s", device_type, e
                )
        self.models = models
        return self.failures


def register_fleet(
    app: faust.App,
    bootstrap: str,
    topics: Mapping[str, Any],
    models: FleetModels,
    *,
    refresh_s: float,
) -> Any:
    """Add the ``fleet`` table and the agent that learns it from ``topics["fleet"]`` (dead
    letters to ``topics["dlq"]``), and the timer that reads every type's model into
    ``models`` at start and every ``refresh_s`` seconds (logged in to Kafka as the worker is).
    Returns the table."""
    lessons = topics["fleet"]
    # replicated as the other tables' changelogs are
    durable = {k: v for k, v in (lessons.config or {}).items() if k == "min.insync.replicas"}
    table = app.Table(
        "fleet",
        default=None,
        partitions=lessons.partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs=durable,
    )
    source = lessons.get_topic_name()

    @app.agent(lessons, name=f"{app.conf.id}.fleet_lessons")
    async def fleet_lessons(stream: Any) -> None:
        async for event in stream.events():
            try:
                lesson = FleetLesson.model_validate_json(event.value)
                if event.key != lesson.key:
                    raise PayloadRejected(
                        f"(key): a lesson of {lesson.device_type} keyed {event.key!r} "
                        "[key_mismatch]"
                    )
                state = learn_lesson(table.get(lesson.key), lesson)
            except (ValueError, PayloadRejected) as e:  # pydantic's ValidationError too
                reason = e.reason if isinstance(e, PayloadRejected) else rejection_reason(e)
                letter = dead_letter(source, event.value, reason, datetime.now(UTC))
                await topics["dlq"].send(key=letter.key, value=letter.value)
                # logged as the letter says it: what identifies a person redacted
                log.warning("dead-lettered a fleet lesson: %s", letter.reason or reason)
                continue
            if state is not None:
                table[lesson.key] = state
                log.info("fleet model of %s learned %s", lesson.device_type, lesson.failure_id)

    changelog = table.changelog_topic.get_topic_name()
    options = credentials_to_aiokafka_auth(app.conf.broker_credentials)

    @app.timer(interval=refresh_s, on_leader=False)
    async def fleet_models() -> None:
        try:
            records = await read_records(bootstrap, changelog, options=options)
        except Exception:  # Kafka away: the models stay as they were, read again next time
            log.warning("fleet models not refreshed from %s", changelog, exc_info=True)
            return
        models.load(records)

    return table
