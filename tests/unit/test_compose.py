"""docker-compose.yml: valid by the Compose schema, and every command a real twin-stream command."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml

from twin_stream.cli import app

ROOT = Path(__file__).parents[2]
SCHEMA = ROOT / ".cache" / "compose-spec" / "compose_spec.json"


def compose() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return body


def test_the_compose_file_is_valid_by_the_compose_schema() -> None:
    assert SCHEMA.exists(), f"{SCHEMA} is missing: `make compose-schema` fetches it"
    jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text())).validate(compose())
    if _has_compose():  # where a compose binary exists, it gets the last word
        subprocess.run(["docker", "compose", "config", "-q"], cwd=ROOT, check=True)


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


def test_an_invalid_compose_file_is_caught() -> None:
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    broken = compose()
    broken["services"]["worker"]["depends_on"]["kafka"]["condition"] = "when_ready"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def _parse(argv: list[str]) -> Any:
    """Parse argv the way the CLI would (options included), without running anything;
    returns the leaf command's context. Raises on an unknown command or option."""
    command: Any = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="twin-stream")
    args = list(argv)
    while hasattr(command, "get_command"):  # a group: descend into the named subcommand
        assert args, "a group needs a subcommand"
        sub = command.get_command(ctx, args[0])
        if sub is None:
            raise LookupError(f"no command {args[0]!r}")
        command, name, args = sub, args[0], args[1:]
        ctx = command.context_class(command, info_name=name, parent=ctx)
    return command.make_context(ctx.info_name, args, parent=ctx.parent)


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, service in compose()["services"].items():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] == "twin-stream":
            found.append((name, [c.replace("${DEVICES:-20}", "20") for c in command[1:]]))
    return found


def test_every_app_service_runs_a_twin_stream_command() -> None:
    services = compose()["services"]
    app_services = {n for n, s in services.items() if s.get("image") == "twin-stream:latest"}
    assert app_services == {n for n, _ in _commands()}
    assert {"bridge", "worker", "sink", "simulator", "mqtt-auth"} <= app_services


@pytest.mark.parametrize("service,argv", _commands(), ids=[n for n, _ in _commands()])
def test_each_services_command_is_a_real_subcommand_with_real_options(
    service: str, argv: list[str]
) -> None:
    ctx = _parse(argv)
    assert ctx.info_name in argv and ctx.params, (service, ctx.params)


def test_a_misspelled_option_would_be_caught() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse(["worker", "--web-prot", "6066"])
    with pytest.raises(LookupError):
        _parse(["wroker"])


def test_the_stack_is_wired_to_itself() -> None:
    services = compose()["services"]
    assert services["grafana"]["volumes"][0].startswith("./deploy/grafana/provisioning:")
    for name in ("bridge", "worker", "sink", "simulator"):
        assert services[name]["depends_on"], name
    for name in ("mosquitto", "kafka", "influxdb", "grafana", "worker"):
        assert "healthcheck" in services[name], name
    env = services["bridge"]["environment"]
    assert env["TWIN_KAFKA__BOOTSTRAP"] == "kafka:9092"
    assert "ports" not in services["worker"]  # scaled with --scale worker=N
