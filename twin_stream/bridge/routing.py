"""Where an MQTT message goes in Kafka, or why it goes to the dead-letter topic. Pure.

>>> from datetime import datetime, timezone
>>> now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> raw = (b'{"v":1,"device_id":"pump-0001","device_type":"infusion_pump","seq":7,'
...        b'"ts":"2026-11-24T11:59:59Z","fw":"2.4.1","metrics":{"motor_current":0.31}}')
>>> route("twin/v1/devices/pump-0001/telemetry", raw, now=now).kafka_topic
'twin.telemetry'
>>> bad = route("twin/v1/devices/pump-0002/telemetry", raw, now=now)
>>> bad.kafka_topic, bad.reason.split(":")[0], bad.reason.endswith("[device_mismatch]")
('twin.dlq', 'device_id', True)
>>> route("elsewhere/pump-0001", raw, now=now).reason
"(topic): topic 'elsewhere/pump-0001' is not under twin/v1/devices/ [bad_topic]"
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final

import orjson
from pydantic import BaseModel, ValidationError

from twin_stream.domain.messages import (
    CommandAck,
    ReportedState,
    StatusMessage,
    parse_payload,
    parse_telemetry,
)
from twin_stream.domain.privacy import Redactor
from twin_stream.domain.topics import KAFKA_TOPICS, device_id_from_mqtt_topic
from twin_stream.errors import PayloadRejected
from twin_stream.redaction import redactor as process_redactor

__all__ = ["MAX_LETTER_PAYLOAD_BYTES", "Routed", "dead_letter", "route"]

_SCHEMAS: dict[str, type[BaseModel]] = {
    "status": StatusMessage,
    "reported": ReportedState,
    "ack": CommandAck,
}


#: The most of a message's bytes its dead letter keeps: four times the protocol's limit, and all
#: that compose's Mosquitto lets through (``max_packet_size 65536``). Of a larger payload (only
#: one refused for its size gets here) the letter keeps the first bytes and its reason says so.
#: Whole, it could make a letter over the most Kafka takes in a record (1 MB by default), which
#: Kafka refuses for good, holding up every message after it (the uplink acks in order).
MAX_LETTER_PAYLOAD_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class Routed:
    """A Kafka record to produce: topic, key (device_id) and value."""

    kafka_topic: str
    key: bytes | None
    value: bytes
    reason: str | None = None  # set for a dead letter


def dead_letter(
    mqtt_topic: str,
    payload: bytes,
    reason: str,
    now: datetime,
    device_id: str | None = None,
    topics: dict[str, str] = KAFKA_TOPICS,
    redactor: Redactor | None = None,
) -> Routed:
    """A dead-letter record: the original bytes, where they came from, why and when; with
    whatever identifies a person redacted first (``redactor``, by default the process's:
    :mod:`twin_stream.redaction`), and the reason naming the fields (never their values).
    The :class:`Routed`'s reason is the letter's: the one to log.

    Past :data:`MAX_LETTER_PAYLOAD_BYTES`, only the first bytes, and the reason says so:

    >>> from datetime import datetime, timezone
    >>> at = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    >>> big = b"[" + b"0," * 50_000 + b"0]"
    >>> letter = dead_letter("t", big, "(payload): too big [too_large]", at)
    >>> orjson.loads(letter.value)["reason"]
    '(payload): too big (the letter keeps its first 65536 of 100003 bytes) [too_large]'

    A name is replaced by its keyed hash:

    >>> letter = dead_letter("t", b'{"patient_name": "Jane Roe"}', "patient_name: no [extra]", at)
    >>> letter.reason, b"Jane" in letter.value
    ('patient_name: no (redacted: patient_name) [extra]', False)
    """
    redactor = redactor or process_redactor()
    redacted = redactor.payload(payload)
    # A value taken out of the payload is taken out of everything said about it too.
    reason = redactor.text(reason, redacted.secrets)
    mqtt_topic = redactor.text(mqtt_topic, redacted.secrets)
    if device_id is not None:
        device_id = redactor.text(device_id, redacted.secrets)
    payload = redacted.payload
    if redacted.note:
        reason = _noted(reason, redacted.note)
    if len(payload) > MAX_LETTER_PAYLOAD_BYTES:
        note = f"the letter keeps its first {MAX_LETTER_PAYLOAD_BYTES} of {len(payload)} bytes"
        reason = _noted(reason, note)
        payload = payload[:MAX_LETTER_PAYLOAD_BYTES]
    record = {
        "mqtt_topic": mqtt_topic,
        "device_id": device_id,
        "reason": reason,
        "received_at": now.isoformat(),
        "payload_base64": base64.b64encode(payload).decode(),
        "redacted": redacted.fields,
    }
    key = device_id.encode() if device_id else None
    return Routed(topics["dlq"], key, orjson.dumps(record), reason)


def _noted(reason: str, note: str) -> str:
    """``note`` in parentheses before the reason's rule (which stays last, for the sink)."""
    head, bracket, rule = reason.rpartition(" [")
    return f"{head} ({note}){bracket}{rule}" if bracket else f"{reason} ({note})"


def rejection_reason(error: ValueError) -> str:
    """The dead letter's reason for a record that is invalid: the field and the rule (the
    worker's agents and the bridge's downlink).

    >>> rejection_reason(ValueError("telemetry without a device_type"))
    '(payload): telemetry without a device_type [unprocessable]'
    """
    if isinstance(error, ValidationError) and error.error_count():
        first = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "(payload)"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        # The rule comes last, where the sink looks for it (its ``rule`` tag).
        return f"{field}: {first['msg']}{more} [{first['type']}]"
    return f"(payload): {' '.join(str(error).split())} [unprocessable]"


@lru_cache(maxsize=65_536)  # one entry per device and channel (the broker's ACL allows no others)
def _split_topic(mqtt_topic: str) -> tuple[str, str, bytes]:
    """``(device_id, channel, key)`` of a device topic (PayloadRejected if it is not one)."""
    device_id, channel = device_id_from_mqtt_topic(mqtt_topic)
    return device_id, channel, device_id.encode()


def route(
    mqtt_topic: str, payload: bytes, *, now: datetime, topics: dict[str, str] = KAFKA_TOPICS
) -> Routed:
    """Validate one MQTT message and say where it goes. Never raises for bad input.

    The payload is parsed once (pydantic's JSON parser validates as it parses); what is forwarded
    is the validated model serialised again, straight to bytes."""
    try:
        device_id, channel, key = _split_topic(mqtt_topic)
    except PayloadRejected as rejected:  # no device to key the letter by
        return dead_letter(mqtt_topic, payload, rejected.reason, now, None, topics)
    try:
        if channel == "telemetry":
            model: BaseModel = parse_telemetry(payload, now=now, expected_device_id=device_id)
        elif channel in _SCHEMAS:
            model = parse_payload(_SCHEMAS[channel], payload, now=now, expected_device_id=device_id)
        else:
            raise PayloadRejected(f"(topic): no channel {channel!r} [bad_topic]", field="(topic)")
    except PayloadRejected as rejected:
        return dead_letter(mqtt_topic, payload, rejected.reason, now, device_id, topics)
    # Forward the validated model's canonical JSON, keyed by device: one device, one partition.
    return Routed(topics[channel], key, model.__pydantic_serializer__.to_json(model))
