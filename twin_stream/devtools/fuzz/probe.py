"""What a probe is: one MQTT message a device publishes, with the fate the platform owes it.

* **dead-lettered by the bridge** (``DEAD_LETTERED``): a message on one of the device's own
  upstream topics that breaks the wire contract. Each is a valid message with one defect (so the
  rule its dead letter must name is known where it can be: ``Probe.rules``), or garbage;
* **refused by the broker** (``REFUSED``): a message on a topic the device may not write
  (another device's, its own ``desired``, anything outside its four upstream topics). Mosquitto's
  ACL refuses it (MQTT v5: PUBACK "Not authorized") and the bridge never sees it. Such a message
  carries a *valid* payload for the topic it names, so that one let through would show on Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twin_stream.domain.devices import fleet_device

__all__ = ["CATEGORIES", "DEAD_LETTERED", "REFUSED", "STRANGER", "Device", "Probe", "fleet"]

#: Categories the bridge dead-letters (the message reaches it on the device's own topic).
DEAD_LETTERED: Final = (
    "malformed",
    "oversized",
    "wrong_type",
    "missing_field",
    "extra_field",
    "out_of_range",
    "non_finite",
    "future_ts",
    "past_ts",
    "device_mismatch",
    "wrong_channel",
)
#: Categories the broker refuses (a topic the device may not write): they never reach Kafka.
REFUSED: Final = ("foreign_topic", "forbidden_topic")
CATEGORIES: Final = DEAD_LETTERED + REFUSED


@dataclass(frozen=True)
class Device:
    """A device of the fleet that publishes probes (with its own login)."""

    device_id: str
    device_type: str


@dataclass(frozen=True)
class Probe:
    """One message a device publishes: its topic, bytes and the fate it is owed."""

    category: str
    device_id: str  # whose account publishes it
    topic: str
    payload: bytes
    #: The broker refuses it (a topic the device may not write); otherwise the bridge
    #: dead-letters it.
    refused: bool = False
    #: The rules its dead letter's reason may end with; empty: any rule.
    rules: frozenset[str] = frozenset()


def fleet(devices: int) -> list[Device]:
    """The first ``devices`` devices of a fleet (``pump-0001``, ``vent-0002``, ...)."""
    return [Device(*fleet_device(i)) for i in range(1, devices + 1)]


#: A device in no fleet: its topics are no fleet device's to write either.
STRANGER: Final = Device("pump-9999", "infusion_pump")
