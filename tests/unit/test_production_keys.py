"""A production deployment (``TWIN_DEPLOYMENT=production``, as compose sets it) never runs a
service on a key of its own: without the redaction key the service stops at once, with one line
naming the variable, before it connects to anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from twin_stream.cli import app


@pytest.mark.parametrize("service", ["bridge", "worker", "sink"])
def test_a_production_service_without_the_redaction_key_stops_naming_it(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWIN_PRIVACY__REDACTION_KEY", raising=False)
    monkeypatch.setenv("TWIN_DEPLOYMENT", "production")
    # Kafka and MQTT point nowhere: a service that went past the check would say so instead.
    monkeypatch.setenv("TWIN_KAFKA__BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("TWIN_MQTT__URL", "mqtt://127.0.0.1:9")
    monkeypatch.setenv("TWIN_STATE__SIGNING_KEY", "k" * 32)
    result = CliRunner().invoke(app, [service], terminal_width=300)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: TWIN_PRIVACY__REDACTION_KEY is not set")
    assert "TWIN_DEPLOYMENT=production" in lines[0]


def test_an_unknown_deployment_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWIN_DEPLOYMENT", "prod")
    result = CliRunner().invoke(app, ["sink"], terminal_width=300)
    assert result.exit_code != 0
    assert "TWIN_DEPLOYMENT" in result.output
