"""What the fleet learned from its failures: every device type's
:class:`~twin_stream.domain.detection.rul.FleetModel`, in every worker.

A failure an engineer records (``twin-stream failures add``, ``POST /twins/{id}/failures``)
travels on ``twin.lifecycle`` to the device's owner, which sends the device's health-index
history up to the failure to ``twin.fleet`` as a
:class:`~twin_stream.domain.events.FleetLesson`. That topic is kept for ever and is the fleet
models' checkpoint: every worker reads it whole at start and then every ``refresh_s`` seconds
(:func:`register_fleet`), and learns each type's model from its lessons in key order, so every
worker holds the same models. Failures are rare (a few a day in a large hospital), so reading
them again costs little; a lesson that does not validate is logged and left out, never
learned.

>>> from datetime import datetime, timezone
>>> from twin_stream.domain.events import FleetLesson
>>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> lesson = FleetLesson(device_id="chiller-0001", device_type="mri_chiller", failed_at=at,
...                      failed_after_h=3.0, history=[(0.0, 0.1), (1.0, 0.5), (2.0, 2.0)],
...                      detector_version="ts-detector/4")
>>> models = FleetModels()
>>> models.learn([(lesson.key, lesson.model_dump_json().encode())])
1
>>> models.get("mri_chiller").failures, models.get("infusion_pump")
(1, None)
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import faust
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.events import FleetLesson
from twin_stream.worker.audit_views import read_records

__all__ = ["FleetModels", "register_fleet"]

log = logging.getLogger(__name__)


class FleetModels:
    """Each device type's fleet model, learned from the lessons on the fleet topic."""

    def __init__(self) -> None:
        self.models: dict[str, FleetModel] = {}
        self.lessons = 0

    def get(self, device_type: str) -> FleetModel | None:
        """The type's model, None while its fleet has no recorded failure."""
        return self.models.get(device_type)

    def learn(self, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Learn every type's model afresh from the topic's records; returns the lessons
        learned."""
        by_type: dict[str, list[tuple[bytes, FleetLesson]]] = defaultdict(list)
        for key, value in records:
            try:
                lesson = FleetLesson.model_validate_json(value)
            except ValidationError as e:
                log.error("a fleet lesson that does not validate is not learned (%s): %s", key, e)
                continue
            by_type[lesson.device_type].append((lesson.key, lesson))
        models = {}
        for device_type, lessons in by_type.items():
            model = FleetModel()
            for _, lesson in sorted(lessons, key=lambda item: item[0]):
                model.learn(list(lesson.history), lesson.failed_after_h)
            models[device_type] = model
        self.models = models
        self.lessons = sum(len(v) for v in by_type.values())
        return self.lessons


def register_fleet(
    app: faust.App, bootstrap: str, fleet_topic: Any, models: FleetModels, *, refresh_s: float
) -> None:
    """Read the fleet topic into ``models`` at start and every ``refresh_s`` seconds (logged in
    to Kafka as the worker is)."""
    topic = fleet_topic.get_topic_name()
    options = credentials_to_aiokafka_auth(app.conf.broker_credentials)

    @app.timer(interval=refresh_s, on_leader=False)
    async def fleet_models() -> None:
        try:
            records = await read_records(bootstrap, topic, options=options)
        except Exception:  # Kafka away: the models stay as they were, read again next time
            log.warning("fleet models not refreshed from %s", topic, exc_info=True)
            return
        models.learn(records)
