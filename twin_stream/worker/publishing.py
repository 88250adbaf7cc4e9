"""What the worker produces: one device's records of a batch of events, and dead letters.

* :class:`DeviceBatch`: what one device's events in one micro-batch made, gathered so that it
  is produced once (one scores record, the latest prediction of each signal, the twin's view
  once, every alert event and desired document, the fleet lessons);
* :class:`Publisher`: produces a batch on ``scores``, ``predictions``, ``alerts``, ``desired``,
  ``fleet`` and ``twins``, and sends a record the worker cannot process to the dead-letter
  topic in the bridge's format (:func:`twin_stream.bridge.routing.dead_letter`);
* :func:`failure_reason`: the dead letter's reason for a record whose processing failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from twin_stream.bridge.routing import dead_letter
from twin_stream.domain.batches import encode_scores
from twin_stream.domain.events import Alert, Command, PredictionRecord, ScoreRecord
from twin_stream.domain.records import FleetLesson
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, mqtt_topic
from twin_stream.errors import PayloadRejected
from twin_stream.worker.processing import DeviceState, Outputs, twin_view

__all__ = ["DeviceBatch", "Publisher", "failure_reason"]


def failure_reason(error: Exception) -> str:
    """The dead letter's reason for a record whose processing failed for another reason than
    its content being invalid: the exception, under its own rule.

    >>> failure_reason(KeyError("motor_current"))
    "(worker): KeyError: 'motor_current' [processing_failed]"
    """
    message = " ".join(str(error).split())
    return f"(worker): {type(error).__name__}: {message} [processing_failed]"


@dataclass
class DeviceBatch:
    """What one device's events in one micro-batch made, to be produced once."""

    state: DeviceState
    scores: list[ScoreRecord] = field(default_factory=list)
    predictions: dict[str, PredictionRecord] = field(default_factory=dict)  # the latest per signal
    alerts: list[Alert] = field(default_factory=list)
    twin_due: bool = False
    documents: list[Command] = field(default_factory=list)  # desired documents, in order
    lessons: list[FleetLesson] = field(default_factory=list)  # for the fleet topic
    #: Whether any event changed the twin, and the device's last event (its checkpoint is
    #: written in that event's partition, once the batch's outputs are produced).
    twin_changed: bool = False
    last_event: Any = None

    def add(self, out: Outputs) -> None:
        self.twin_changed = self.twin_changed or out.twin_changed
        self.scores += out.scores
        self.documents += out.documents
        self.lessons += out.lessons
        for prediction in out.predictions:
            self.predictions[prediction.metric] = prediction
        self.alerts += out.alerts
        # The twin's view goes out when something people look at changed: its alerts, its
        # data-quality counters (a duplicate, a gap...), or anything but a plain reading.
        self.twin_due = self.twin_due or (
            out.twin_changed
            and (bool(out.alerts) or out.outcome not in ("accepted", "reordered") or not out.scores)
        )


class Publisher:
    """Produces what a batch of events made: scores, predictions, alerts, the twin's view,
    dead letters."""

    def __init__(self, topics: Mapping[str, Any]) -> None:
        self.topics = topics
        self._published: dict[str, int] = {}  # the twin version last published, per device

    async def publish(self, device_id: str, batch: DeviceBatch) -> None:
        key = device_id.encode()
        if batch.scores:
            await self.topics["scores"].send(key=key, value=encode_scores(batch.scores))
        for prediction in batch.predictions.values():
            await self.topics["predictions"].send(key=key, value=prediction.to_json())
        for alert in batch.alerts:
            await self.topics["alerts"].send(key=key, value=alert.model_dump_json().encode())
        for document in batch.documents:
            await self.topics["desired"].send(key=key, value=document.model_dump_json().encode())
        for lesson in batch.lessons:
            await self.topics["fleet"].send(key=lesson.key, value=lesson.model_dump_json().encode())
        state = batch.state
        if batch.twin_due or state.twin.version != self._published.get(device_id, -1):
            self._published[device_id] = state.twin.version
            view = twin_view(state.twin, state.open_alerts(), datetime.now(UTC))
            await self.topics["twins"].send(key=key, value=orjson.dumps(view))

    async def publish_outputs(self, device_id: str, state: DeviceState, out: Outputs) -> None:
        """Produce what one event outside a batch made (a dead letter counted, a heartbeat
        checked)."""
        batch = DeviceBatch(state)
        batch.add(out)
        await self.publish(device_id, batch)

    async def dead_letter(
        self, kind: str, device_id: str | None, value: bytes, reason: str, now: datetime
    ) -> str:
        """Send a record of topic kind ``kind`` that the worker cannot process to the
        dead-letter topic. Its ``mqtt_topic`` is the one the device published it on; a
        command, which never came over MQTT, or a record without a device id names its Kafka
        topic instead. Returns the letter's reason, redacted: the one to log."""
        source = self.topics[kind].get_topic_name()
        if kind in DEVICE_TO_PLATFORM and device_id is not None:
            try:
                source = mqtt_topic(device_id, kind)
            except PayloadRejected:
                pass  # a key that is no device id: keep the Kafka topic
        letter = dead_letter(source, value, reason, now, device_id)
        await self.topics["dlq"].send(key=letter.key, value=letter.value)
        return letter.reason or reason
