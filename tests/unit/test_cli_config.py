"""The CLI edge: settings read once, clear one-line errors, no secret on the command line, and
no module but config.py reading the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin_stream.cli import app
from twin_stream.config import Settings, StackSettings, load_settings
from twin_stream.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[2] / "twin_stream"


@pytest.fixture
def no_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment with no TWIN_* endpoint settings and no dev stack running."""
    for name in ("TWIN_KAFKA__BOOTSTRAP", "TWIN_INFLUX__URL", "TWIN_MQTT__URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWIN_STACK__DIR", str(tmp_path / "no-stack"))
    return tmp_path / "no-stack"


@pytest.mark.parametrize(
    ("command", "setting"),
    [(["sink"], "TWIN_KAFKA__BOOTSTRAP"), (["worker"], "TWIN_KAFKA__BOOTSTRAP")],
)
def test_a_production_command_without_settings_names_them(
    no_stack: Path, command: list[str], setting: str
) -> None:
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1, result.output
    assert setting in result.output
    assert "twin-stream stack up" in result.output
    assert "Traceback" not in result.output


def test_the_bridge_without_a_broker_names_the_setting(no_stack: Path) -> None:
    result = CliRunner().invoke(app, ["bridge"])
    assert result.exit_code == 1
    assert "TWIN_MQTT__URL" in result.output


def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_KAFKA__PARTITIONS", "many")
    with pytest.raises(ConfigError, match="TWIN_KAFKA__PARTITIONS"):
        load_settings()
    result = CliRunner().invoke(app, ["stack", "status"])
    assert result.exit_code == 1
    assert "TWIN_KAFKA__PARTITIONS" in result.output
    assert "Traceback" not in result.output


def test_grafana_push_takes_its_token_from_the_environment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TWIN_GRAFANA__TOKEN", raising=False)
    refused = CliRunner().invoke(
        app, ["grafana", "push", "--url", "http://127.0.0.1:9", "--token", "secret"]
    )
    assert refused.exit_code == 2  # no such option: a secret never goes on the command line
    missing = CliRunner().invoke(app, ["grafana", "push", "--url", "http://127.0.0.1:9"])
    assert missing.exit_code == 1
    assert "TWIN_GRAFANA__TOKEN" in missing.output


def test_secrets_are_secret_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_GRAFANA__TOKEN", "glsa_abc")
    monkeypatch.setenv("TWIN_GRAFANA__ALERT_WEBHOOK_URL", "https://hooks.example/s3cret")
    settings = load_settings()
    assert "glsa_abc" not in repr(settings)
    assert "s3cret" not in repr(settings)
    assert settings.grafana.token is not None
    assert settings.grafana.token.get_secret_value() == "glsa_abc"
    variables = settings.grafana_variables()
    assert variables["TWIN_GRAFANA__ALERT_WEBHOOK_URL"] == "https://hooks.example/s3cret"
    assert "TWIN_INFLUX__URL" not in variables  # not set: the push names it as missing


def test_worker_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_WORKER__WEB_HOST", "hostname")
    monkeypatch.setenv("TWIN_WORKER__CHECKPOINT_EVERY", "50")
    settings = load_settings()
    assert settings.worker.web_host == "hostname"
    assert settings.worker.checkpoint_every == 50
    assert Settings(stack=StackSettings(dir=Path("x"))).stack.dir == Path("x")


def _environment_reads(path: Path) -> list[str]:
    """``os.environ[...]``, ``os.environ.get``, ``os.getenv`` and typer's ``envvar=``; passing
    the whole environment on to a child process (``{**os.environ, ...}``) is not a read."""
    tree = ast.parse(path.read_text(), str(path))
    splatted = {
        id(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if key is None
    }
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            if id(node) not in splatted:
                reads.append(f"{path.name}:{node.lineno} os.{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg == "envvar":
            reads.append(f"{path.name}:{node.value.lineno} envvar=")
    return sorted(reads, key=lambda r: int(r.split(":")[1].split()[0]))


def test_no_module_but_config_reads_the_environment() -> None:
    reads = {
        str(path.relative_to(PACKAGE)): r
        for path in PACKAGE.rglob("*.py")
        if path.name != "config.py" and (r := _environment_reads(path))
    }
    assert reads == {}


def test_the_environment_check_sees_a_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nA = os.environ.get('X')\nB = {**os.environ, 'Y': '1'}\nC = os.getenv('Z')\n"
    )
    assert _environment_reads(sample) == ["sample.py:2 os.environ", "sample.py:4 os.getenv"]


def test_unreadable_evaluation_data_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "history.csv"
    bad.write_text("a,b\n1,2\n")
    for args, expected in (
        (["eval", "skab", "--data", str(tmp_path / "none")], "no SKAB files"),
        (["eval", "replay", str(bad), "--out", str(tmp_path / "out")], "no time column 'ts'"),
        (
            ["eval", "nab", "--data", str(tmp_path), "--labels", str(tmp_path / "x.json")],
            "No such file",
        ),
    ):
        if args[1] == "nab":
            args += ["--out", str(tmp_path / "nab-out")]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert "error:" in result.output and expected in result.output
        assert "Traceback" not in result.output
