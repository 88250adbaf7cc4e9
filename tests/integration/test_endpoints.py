"""A production command uses the dev stack only while ``twin-stream stack up`` runs, and says so;
once the stack is down it stops with the setting to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_stream.cli._endpoints import Endpoints
from twin_stream.config import Settings, StackSettings
from twin_stream.devtools.stack import Stack
from twin_stream.errors import ConfigError

pytestmark = pytest.mark.services


def test_endpoints_use_a_running_dev_stack_and_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "stack"
    stack = Stack(root, services=["mosquitto"], device_ids=["pump-0001"])
    state = stack.up(timeout=60)
    try:
        endpoints = Endpoints(Settings(stack=StackSettings(dir=root)))
        mqtt = endpoints.mqtt("bridge-test")
        assert (mqtt.host, mqtt.port) == ("127.0.0.1", state.services["mosquitto"].port)
        assert mqtt.password  # from the stack's credentials file
        said = capsys.readouterr().err
        assert "dev stack" in said and "TWIN_MQTT__URL" in said
        with pytest.raises(ConfigError, match="TWIN_KAFKA__BOOTSTRAP.*has no kafka"):
            endpoints.kafka_bootstrap()
    finally:
        stack.down()
    with pytest.raises(ConfigError, match="TWIN_MQTT__URL is not set.*twin-stream stack up"):
        Endpoints(Settings(stack=StackSettings(dir=root))).mqtt("bridge-test")
