"""Names of every MQTT topic and Kafka topic a message travels through.

One place for them, so that the wire protocol (``docs/protocol.md``), the broker ACLs, the bridge
and the workers cannot disagree.

>>> mqtt_topic("pump-0001", "telemetry")
'twin/v1/devices/pump-0001/telemetry'
>>> device_id_from_mqtt_topic("twin/v1/devices/pump-0001/status")
('pump-0001', 'status')

A topic or a device id that breaks these rules is part of a message that breaks the wire
protocol: :class:`~twin_stream.errors.PayloadRejected`, with the rule last in its reason (as
validation writes it), so the bridge dead-letters it as it is.

>>> try:
...     mqtt_topic("Pump 1", "telemetry")
... except PayloadRejected as rejected:
...     print(rejected.field, rejected.reason.endswith("[bad_device_id]"))
device_id True
"""

from __future__ import annotations

import re
from typing import Final, Literal

from twin_stream.errors import PayloadRejected

__all__ = [
    "DEVICE_ID_PATTERN",
    "DEVICE_TO_PLATFORM",
    "KAFKA_TOPICS",
    "MQTT_PREFIX",
    "PLATFORM_TO_DEVICE",
    "DEVICE_TABLES",
    "WORKER_TABLES",
    "worker_changelogs",
    "Channel",
    "device_id_from_mqtt_topic",
    "kafka_topics",
    "mqtt_topic",
    "mqtt_wildcard",
]

MQTT_PREFIX: Final = "twin/v1/devices"

Channel = Literal["telemetry", "status", "reported", "ack", "desired"]

#: Channels a device publishes on (upstream).
DEVICE_TO_PLATFORM: Final[tuple[Channel, ...]] = ("telemetry", "status", "reported", "ack")
#: Channels the platform publishes on and the device subscribes to (downstream).
PLATFORM_TO_DEVICE: Final[tuple[Channel, ...]] = ("desired",)

#: A device id is also an MQTT user name and a topic level, so it must not contain MQTT
#: wildcards, separators or anything a shell or a URL would mangle.
DEVICE_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{1,62}$"
_DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN)


def kafka_topics(prefix: str = "twin") -> dict[str, str]:
    """The Kafka topics, all keyed by device_id; a prefix separates deployments (and tests).

    >>> kafka_topics()["dlq"], kafka_topics("test-42")["telemetry"]
    ('twin.dlq', 'test-42.telemetry')
    """
    names = {"ack": "acks"}
    return {
        kind: f"{prefix}.{names.get(kind, kind)}"
        for kind in (
            "telemetry",
            "status",
            "reported",
            "ack",
            "commands",
            "desired",
            "scores",
            "predictions",
            "alerts",
            "twins",
            "dlq",
            "audit",
            "alert_actions",
            "lifecycle",
            "fleet",
        )
    }


#: The workers' tables: the twins, their models, and where to replay their telemetry from.
DEVICE_TABLES: Final = ("twins", "models", "replay")
#: ... and the fleet models (one a device type, learned by the owner of the type's partition
#: of ``fleet``: twin_stream.worker.fleet).
WORKER_TABLES: Final = (*DEVICE_TABLES, "fleet")


def worker_changelogs(prefix: str = "twin") -> dict[str, str]:
    """The changelog topics of the workers' tables (Faust's names: ``{group}-{table}-changelog``,
    the group being ``{prefix}-worker``), by kind.

    >>> worker_changelogs()["models_changelog"]
    'twin-worker-models-changelog'
    """
    return {f"{table}_changelog": f"{prefix}-worker-{table}-changelog" for table in WORKER_TABLES}


KAFKA_TOPICS: Final = kafka_topics()


def mqtt_topic(device_id: str, channel: Channel) -> str:
    """The MQTT topic of one device's channel; PayloadRejected for a device id that is none."""
    if not _DEVICE_ID_RE.match(device_id):
        raise PayloadRejected(
            f"device_id: {device_id!r} does not match {DEVICE_ID_PATTERN} [bad_device_id]",
            field="device_id",
        )
    return f"{MQTT_PREFIX}/{device_id}/{channel}"


def mqtt_wildcard(channel: Channel) -> str:
    """The subscription that matches one channel of every device."""
    return f"{MQTT_PREFIX}/+/{channel}"


def device_id_from_mqtt_topic(topic: str) -> tuple[str, str]:
    """Split a device topic into ``(device_id, channel)``; PayloadRejected if it is not one."""
    prefix = MQTT_PREFIX + "/"
    if not topic.startswith(prefix):
        raise PayloadRejected(
            f"(topic): topic {topic!r} is not under {MQTT_PREFIX}/ [bad_topic]", field="(topic)"
        )
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or not _DEVICE_ID_RE.match(parts[0]):
        raise PayloadRejected(
            f"(topic): topic {topic!r} is not {MQTT_PREFIX}/<device_id>/<channel> [bad_topic]",
            field="(topic)",
        )
    return parts[0], parts[1]
