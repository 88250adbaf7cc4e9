"""Downlink: desired documents from ``twin.desired`` to each device's desired-state topic.

The worker that owns a device merges every change of its desired state into one document, the
device's whole desired state at a twin version (:meth:`DeviceState.desired_document
<twin_stream.worker.processing.DeviceState.desired_document>`), and sends it on ``twin.desired``
as a :class:`~twin_stream.domain.events.Command`. Each becomes a desired-state message (command
id, twin version, expiry, every desired setting) published retained at QoS 1, so a device that
is offline gets, when it reconnects, every change made meanwhile, and a change the worker
withdrew (rejected, expired) is gone from it. Of several documents of one device in one poll
only the newest is published: it holds the others' changes. The Kafka offset is committed only
after the broker acknowledged the publish: a document is never lost between the two, and a
redelivered one carries the same command id, which devices apply once.

A record on ``twin.desired`` that is no desired document (the worker wrote it: a bug) is not
delivered, and not dropped: it goes to the dead-letter topic with the reason (``dead_letter``,
confirmed by Kafka before the offset is committed), and the device keeps its last retained
document.

While the bridge is not connected to the broker, commands wait: a publish paho could not send
is sent again (and those after it only then, so a device's last retained state is its last
command) once the connection is back. A commit that fails because the consumer group
rebalanced is not an error: the partitions' new owner delivers those commands again. Nor is
Kafka being away: polls and commits that fail for it are tried again with backoff, and the
bridge goes on (an outage delays commands, it never stops the bridge).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from kafka import KafkaConsumer
from kafka import errors as kafka_errors
from pydantic import ValidationError

from twin_stream.bridge.routing import rejection_reason
from twin_stream.domain.events import Command
from twin_stream.domain.messages import DesiredMessage
from twin_stream.domain.topics import mqtt_topic
from twin_stream.kafka import is_transient
from twin_stream.redaction import redactor

__all__ = ["Downlink", "desired_message"]

log = logging.getLogger(__name__)

#: The longest wait between two polls while Kafka is unreachable.
MAX_BACKOFF_S = 10.0


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

    def __init__(
        self,
        consumer: KafkaConsumer,
        client: mqtt.Client,
        dead_letter: Callable[[bytes | None, bytes, str], None] | None = None,
    ) -> None:
        """``dead_letter(key, value, reason)`` sends a record that is no desired document to
        the dead-letter topic and returns once Kafka has it."""
        self.consumer = consumer
        self.client = client
        self.dead_letter = dead_letter
        self.published = 0
        self.rejected = 0

    def run(self, stop: threading.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                batches = self.consumer.poll(timeout_ms=200)
            except kafka_errors.KafkaError as e:
                if not is_transient(e):
                    raise
                # Kafka is away: nothing was read, nothing is lost; wait for it to come back.
                log.warning("kafka unreachable (%s); polling again in %.1fs", e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.2
            if not batches:
                continue
            newest: dict[str, bytes] = {}  # topic -> payload: a device's newest document
            for records in batches.values():
                for record in records:
                    for topic, payload in self._desired(record.key, record.value):
                        newest.pop(topic, None)
                        newest[topic] = payload
            messages = list(newest.items())
            if not self._deliver(messages, stop):
                return  # stopped first, not committed: the commands come again after a restart
            try:
                self.consumer.commit()
            except kafka_errors.CommitFailedError as e:
                log.warning("commit of %d commands failed (group rebalanced): %s", len(messages), e)
            except kafka_errors.KafkaError as e:
                if not is_transient(e):
                    raise
                # Delivered but not committed: the next commit covers them, or, after a
                # restart, they come again (the same command ids: devices apply them once).
                log.warning(
                    "commit of %d commands failed (kafka unreachable): %s", len(messages), e
                )

    def _desired(self, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
        """The desired-state message (topic, payload) of one command record."""
        try:
            command = Command.model_validate_json(value)
        except ValidationError as e:
            # The worker wrote it: a bug. Dead-lettered; the device keeps its last document.
            self.rejected += 1
            reason = rejection_reason(e)
            log.error(
                "a record on twin.desired is no desired document: %s", redactor().text(reason)
            )
            if self.dead_letter is None:
                raise
            self.dead_letter(key, value, reason)
            return []
        payload = desired_message(command).model_dump_json(exclude_none=True).encode()
        return [(mqtt_topic(command.device_id, "desired"), payload)]

    def _deliver(self, messages: list[tuple[str, bytes]], stop: threading.Event) -> bool:
        """Publish ``messages`` in order (QoS 1, retained) and wait for the broker's PUBACK of
        each; False if ``stop`` was set first."""
        infos: list[Any] = []
        while not stop.is_set():
            while len(infos) < len(messages) and self.client.is_connected():
                topic, payload = messages[len(infos)]
                info = self.client.publish(topic, payload, qos=1, retain=True)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # not sent (the connection just went): again once it is back
                infos.append(info)
                self.published += 1
            unconfirmed = [info for info in infos if not info.is_published()]
            if len(infos) == len(messages) and not unconfirmed:
                return True
            if unconfirmed:
                unconfirmed[0].wait_for_publish(timeout=0.2)
            else:
                stop.wait(0.2)  # disconnected: paho reconnects
        return False
