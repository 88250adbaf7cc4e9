"""Session-scoped fixtures that run the real services of twin_stream.devtools.stack.

Each service starts once per test session, on a free loopback port in a temp dir, and stops at
the end. A missing service is an error, never a skip: the whole point of these tests is that the
real thing works.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from twin_stream.devtools.stack import Stack, StackState
from twin_stream.domain.devices import fleet_device
from twin_stream.mqtt_auth import BRIDGE_USER, MqttAccount

TEST_DEVICES = [fleet_device(i)[0] for i in range(1, 21)]  # pump-0001, vent-0002, ...


@dataclass(frozen=True)
class MqttBroker:
    """A running Mosquitto and the accounts it accepts."""

    host: str
    port: int
    accounts: dict[str, MqttAccount]

    def account(self, username: str) -> MqttAccount:
        return self.accounts[username]

    @property
    def bridge(self) -> MqttAccount:
        return self.accounts[BRIDGE_USER]


def _start(tmp_path_factory: pytest.TempPathFactory, service: str, **kwargs: object) -> Stack:
    root = tmp_path_factory.mktemp(f"stack-{service}")
    stack = Stack(root, services=[service], **kwargs)  # type: ignore[arg-type]
    stack.up(timeout=120)
    return stack


def _state(stack: Stack) -> StackState:
    assert stack.state is not None
    return stack.state


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    stack = _start(tmp_path_factory, "mosquitto", device_ids=TEST_DEVICES)
    info = _state(stack).services["mosquitto"]
    yield MqttBroker("127.0.0.1", info.port, {a.username: a for a in stack.accounts})
    stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = _start(tmp_path_factory, "kafka")
    yield _state(stack).url("kafka")
    stack.down()


@pytest.fixture(scope="session")
def influxdb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stack's InfluxDB (1.13, built by ``make influxd``): v2 write API and InfluxQL."""
    stack = _start(tmp_path_factory, "influxdb")
    yield _state(stack).url("influxdb")
    stack.down()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: for Kafka topics, consumer groups, databases, client ids."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:8]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may skip: a skipped test is a check that did not run."""
    if os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; skips are failures in CI")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if (here / "integration") in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.services)
