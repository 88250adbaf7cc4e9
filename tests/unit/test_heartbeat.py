"""The heartbeat timer's turn (``worker/heartbeat.py``) without a broker: a silent device's
notice goes to the status topic once, and one Kafka did not take is sent at the next turn."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from tests.unit.conftest import NOW, raw_readings
from twin_stream.domain.messages import StatusMessage
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.heartbeat import check_heartbeats
from twin_stream.worker.publishing import Publisher


class StatusTopic:
    """The status topic: refuses the first ``failures`` sends (Kafka away), keeps the rest."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: bytes, value: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("kafka away")
        self.sent.append((key, value))


def silent_pump() -> DeviceCache:
    """A cache (on plain dicts for tables) holding one pump, online, silent since NOW."""
    devices = DeviceCache({}, {}, every=200, interval_s=30.0)
    state = devices.load("pump-0001")
    for raw in raw_readings(5):  # one a second, the last at NOW
        state.on_telemetry(raw, now=NOW)
    state.twin.connectivity = "online"
    return devices


def turn(devices: DeviceCache, status: StatusTopic, seconds: float) -> None:
    asyncio.run(
        check_heartbeats(
            devices, status, Publisher({}), now=NOW + timedelta(seconds=seconds), retry_s=5.0
        )
    )


def test_a_silent_device_gets_its_notice_once() -> None:
    devices, status = silent_pump(), StatusTopic(failures=0)
    turn(devices, status, 20)  # within the 30 s timeout of a 1 s device
    assert status.sent == []
    turn(devices, status, 45)
    turn(devices, status, 60)
    ((key, value),) = status.sent
    notice = StatusMessage.model_validate_json(value)
    assert key == b"pump-0001" and notice.state == "offline" and notice.reason == "heartbeat"
    assert notice.ts == NOW + timedelta(seconds=30)  # stamped when it became overdue


def test_a_notice_kafka_did_not_take_is_sent_at_the_next_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    devices, status = silent_pump(), StatusTopic(failures=1)
    with caplog.at_level(logging.WARNING, logger="twin_stream.worker.heartbeat"):
        turn(devices, status, 45)
    assert status.sent == []
    assert "notice of pump-0001 not sent; trying again in 5 s" in caplog.text
    turn(devices, status, 50)
    ((_, value),) = status.sent
    assert StatusMessage.model_validate_json(value).ts == NOW + timedelta(seconds=30)
