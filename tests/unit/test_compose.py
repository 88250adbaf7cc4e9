"""docker-compose.yml: valid by the Compose schema, every command a real twin-stream command,
secrets without defaults, each service with only the credentials it needs, and MQTT over TLS
wired from the files the one-shot services make to the services that read them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from twin_stream.cli import app
from twin_stream.domain.retention import DEFAULT_DAYS

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


# --- secrets -------------------------------------------------------------------------------------

#: Variables compose may fill with a default: none of them is a secret.
NOT_SECRETS = {"DEVICES"}
#: The well-known values an earlier compose file fell back to.
DEV_SECRETS = ("twin-stream-dev-token", "change-me-please", "no-webhook-configured")


def _interpolations() -> list[tuple[str, str]]:
    """Every ``${NAME<rest>}`` of the compose file, as (NAME, rest)."""
    text = (ROOT / "docker-compose.yml").read_text()
    return re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}", text)


def test_no_secret_has_a_default_and_a_missing_one_stops_compose() -> None:
    found = _interpolations()
    assert {name for name, _ in found} >= {
        "INFLUX_TOKEN",
        "INFLUX_ADMIN_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "ALERT_WEBHOOK_URL",
    }
    for name, rest in found:
        if name in NOT_SECRETS or name.startswith("TWIN_RETENTION__"):  # days, with defaults
            continue
        # ${X:?message}: compose stops with the message when X is unset or empty.
        assert rest.startswith(":?") and "docs/deploy.md" in rest, f"${{{name}{rest}}}"
    text = (ROOT / "docker-compose.yml").read_text()
    assert [s for s in DEV_SECRETS if s in text] == []


def test_every_secret_setting_of_every_service_comes_from_the_environment() -> None:
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"TOKEN|PASSWORD|SECRET|WEBHOOK", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (name, key, value)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's named volumes: volume -> where it is mounted."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        if not source.startswith((".", "/")):
            found[source] = target
    return found


def _who_mounts(volume: str) -> set[str]:
    return {n for n, s in compose()["services"].items() if volume in _mounts(s)}


def _who_gets(variable: str) -> set[str]:
    """The services whose environment uses ``${variable...}``."""
    return {
        name
        for name, service in compose()["services"].items()
        if any(f"${{{variable}" in str(v) for v in (service.get("environment") or {}).values())
    }


def test_each_service_gets_only_the_credentials_it_needs() -> None:
    # The devices' plain passwords: written by mqtt-auth, read by the simulator, no one else.
    assert _who_mounts("mqtt-device-auth") == {"mqtt-auth", "simulator"}
    assert _who_mounts("mqtt-bridge-auth") == {"mqtt-auth", "bridge"}
    assert _who_mounts("mqtt-broker-auth") == {"mqtt-auth", "mosquitto"}
    # The CA's key never leaves the service that signs; the broker's key goes to the broker.
    assert _who_mounts("tls-ca") == {"certs"}
    assert _who_mounts("mqtt-tls-server") == {"certs", "mosquitto"}
    assert _who_mounts("mqtt-tls-public") == {"certs", "bridge", "simulator"}
    # The InfluxDB token: InfluxDB itself, the sink that writes and Grafana that reads.
    assert _who_gets("INFLUX_TOKEN") == {"influxdb", "sink", "grafana"}
    assert _who_gets("INFLUX_ADMIN_PASSWORD") == {"influxdb"}
    assert _who_gets("GRAFANA_ADMIN_PASSWORD") == {"grafana"}
    assert _who_gets("ALERT_WEBHOOK_URL") == {"grafana"}
    services = compose()["services"]
    for name in ("worker", "sink"):  # no MQTT at all
        assert not [k for k in services[name].get("environment") or {} if "MQTT" in k], name
        assert "volumes" not in services[name], name


# --- MQTT over TLS, from the files the one-shot services make to the services reading them ------


def _mosquitto_conf() -> dict[str, list[str]]:
    conf: dict[str, list[str]] = {}
    for line in (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            conf.setdefault(key, []).append(value)
    return conf


def test_mosquitto_listens_only_with_tls_and_its_clients_verify_it() -> None:
    services = compose()["services"]
    conf = _mosquitto_conf()
    assert conf["listener"] == ["8883"]  # no plaintext listener at all
    assert conf["tls_version"] == ["tlsv1.2"]
    assert conf["allow_anonymous"] == ["false"]
    assert services["mosquitto"]["ports"] == ["8883:8883"]
    assert "8883" in str(services["mosquitto"]["healthcheck"]["test"])
    certs = services["certs"]["command"]
    hosts = [certs[i + 1] for i, arg in enumerate(certs) if arg == "--host"]
    for name in ("bridge", "simulator"):
        env = services[name]["environment"]
        url = env["TWIN_MQTT__URL"]
        assert url == "mqtts://mosquitto:8883", name
        assert url.split("//")[1].split(":")[0] in hosts  # the name its certificate carries
        assert "TWIN_MQTT__CA_FILE" in env, name


def _run_writer(service: str, tmp_path: Path) -> Path:
    """Run a one-shot service's command with its folder moved under ``tmp_path``."""
    argv = [a.replace("${DEVICES:-20}", "3") for a in compose()["services"][service]["command"]]
    folder = argv[2] if argv[1] == "mqtt-auth" else argv[3]
    local = tmp_path / service
    result = CliRunner().invoke(app, [local.as_posix() if a == folder else a for a in argv[1:]])
    assert result.exit_code == 0, result.output
    return local


def _files_seen_by(service: str, tmp_path: Path) -> dict[PurePosixPath, Path]:
    """What a service sees in its named volumes (path in the container -> file made here), the
    volumes filled by running mqtt-auth and certs as compose runs them."""
    services = compose()["services"]
    filled: dict[str, Path] = {}
    for writer in ("mqtt-auth", "certs"):
        local = _run_writer(writer, tmp_path)
        argv = services[writer]["command"]
        root = PurePosixPath(argv[2] if writer == "mqtt-auth" else argv[3])
        for volume, target in _mounts(services[writer]).items():
            filled[volume] = local / PurePosixPath(target).relative_to(root)
    seen = {}
    for volume, target in _mounts(services[service]).items():
        for path in filled.get(volume, Path("/nonexistent")).rglob("*"):
            if path.is_file():
                inside = PurePosixPath(target) / path.relative_to(filled[volume]).as_posix()
                seen[inside] = path
    return seen


def test_every_file_a_service_is_pointed_at_is_in_a_volume_it_mounts(tmp_path: Path) -> None:
    for name in ("bridge", "simulator"):
        seen = _files_seen_by(name, tmp_path / name)
        env = compose()["services"][name]["environment"]
        for key in ("TWIN_MQTT__CA_FILE", "TWIN_MQTT__CREDENTIALS_FILE"):
            assert PurePosixPath(env[key]) in seen, (name, key, sorted(map(str, seen)))
        logins = json.loads(seen[PurePosixPath(env["TWIN_MQTT__CREDENTIALS_FILE"])].read_text())
        roles = {login["role"] for login in logins.values()}
        assert roles == ({"bridge"} if name == "bridge" else {"device"}), name
        assert not [p for p in seen if p.suffix == ".key"], name  # no private key at all
    broker = _files_seen_by("mosquitto", tmp_path / "mosquitto")
    for key in ("cafile", "certfile", "keyfile", "password_file", "acl_file"):
        assert PurePosixPath(_mosquitto_conf()[key][0]) in broker, key
    assert not [p for p in broker if p.name == "mqtt-credentials.json"]  # hashes only
    assert not [p for p in broker if p.name == "ca.key"]


def test_mosquitto_holds_what_the_bridge_cannot_forward_yet() -> None:
    """While Kafka is away the bridge stops acknowledging (at most TWIN_BRIDGE__MAX_UNACKED in
    flight), so the broker queues for it: Mosquitto's default of 1,000 queued messages per
    client would drop acknowledged device data within seconds; persistence keeps the queue
    across a restart."""
    conf = _mosquitto_conf()
    assert int(conf["max_queued_messages"][0]) >= 100_000
    assert conf["persistence"] == ["true"]
    assert 0 < int(conf["autosave_interval"][0]) <= 300


def test_the_worker_is_healthy_only_when_ready() -> None:
    test = " ".join(compose()["services"]["worker"]["healthcheck"]["test"])
    assert "/ready" in test


def test_the_services_that_create_topics_keep_them_as_the_retention_settings_say() -> None:
    services = compose()["services"]
    for name in ("bridge", "worker"):
        environment = services[name]["environment"]
        for kind, days in DEFAULT_DAYS.items():
            variable = f"TWIN_RETENTION__{kind.upper()}_DAYS"
            # the setting passed through, with the code's default when unset
            assert environment[variable] == f"${{{variable}:-{days}}}", (name, variable)
    influxdb = services["influxdb"]["environment"]
    assert influxdb["DOCKER_INFLUXDB_INIT_RETENTION"] == "${TWIN_RETENTION__RAW_DAYS:-30}d"
    assert influxdb["SUMMARIES_RETENTION_DAYS"] == "${TWIN_RETENTION__SUMMARIES_DAYS:-730}"
