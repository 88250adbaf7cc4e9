"""Downlink: commands from ``twin.commands`` to each device's desired-state topic.

Each command becomes a desired-state message (command id, twin version, expiry) published
retained at QoS 1, so a device that is offline gets it when it reconnects. The Kafka offset is
committed only after the broker acknowledged the publish: a command is never lost between the
two, and a redelivered one carries the same command id, which devices apply once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from kafka import KafkaConsumer
from pydantic import ValidationError

from twin_stream.domain.events import Command
from twin_stream.domain.messages import DesiredMessage
from twin_stream.domain.topics import mqtt_topic

__all__ = ["Downlink", "desired_message"]

log = logging.getLogger(__name__)


def desired_message(command: Command) -> DesiredMessage:
    """The payload a device receives for a command."""
    return DesiredMessage(
        command_id=command.command_id,
        twin_version=command.twin_version,
        issued_at=command.issued_at,
        expires_at=command.expires_at,
        desired=command.desired,
    )


class Downlink:
    """Consume commands and publish desired state, committing after the broker's PUBACK."""

    def __init__(self, consumer: KafkaConsumer, client: mqtt.Client) -> None:
        self.consumer = consumer
        self.client = client
        self.published = 0
        self.rejected = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            batches = self.consumer.poll(timeout_ms=200)
            if not batches:
                continue
            infos: list[Any] = []
            for records in batches.values():
                for record in records:
                    infos.extend(self._publish(record.value))
            for info in infos:
                while not info.is_published() and not stop.is_set():
                    info.wait_for_publish(timeout=1.0)
            if stop.is_set() and not all(i.is_published() for i in infos):
                return  # not committed: the commands come again after a restart
            self.consumer.commit()

    def _publish(self, value: bytes) -> list[Any]:
        try:
            command = Command.model_validate_json(value)
        except ValidationError as e:
            self.rejected += 1
            log.error("invalid command on twin.commands skipped: %s", e.errors()[0])
            return []
        payload = desired_message(command).model_dump_json(exclude_none=True).encode()
        info = self.client.publish(
            mqtt_topic(command.device_id, "desired"), payload, qos=1, retain=True
        )
        self.published += 1
        return [info]
