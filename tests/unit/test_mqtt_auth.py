from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from twin_stream.mqtt_auth import (
    BRIDGE_USER,
    MqttAccount,
    acl_file,
    generate_accounts,
    password_file,
)


def test_password_file_holds_verifiable_salted_hashes_not_passwords() -> None:
    accounts = generate_accounts(["pump-0001", "vent-0002"])
    text = password_file(accounts)
    assert [line.split(":")[0] for line in text.splitlines()] == [
        "pump-0001",
        "vent-0002",
        BRIDGE_USER,
    ]
    for account, line in zip(accounts, text.splitlines(), strict=True):
        assert account.password not in line
        _, algo, iterations, salt, digest = line.split(":", 1)[1].split("$")
        assert algo == "7"
        expected = hashlib.pbkdf2_hmac(
            "sha512", account.password.encode(), base64.b64decode(salt), int(iterations)
        )
        assert base64.b64decode(digest) == expected


def test_accounts_get_distinct_passwords_and_never_print_them() -> None:
    accounts = generate_accounts([f"dev-{i:04d}" for i in range(50)])
    assert len({a.password for a in accounts}) == len(accounts)
    assert accounts[0].password not in repr(accounts[0])


def test_acl_gives_each_device_only_its_own_topics() -> None:
    acl = acl_file(
        [MqttAccount("pump-0001", "x", "device"), MqttAccount("vent-0002", "y", "device")]
    )
    pump_block = acl.split("user pump-0001")[1].split("user ")[0]
    assert "vent-0002" not in pump_block
    assert "+" not in pump_block and "#" not in pump_block
    assert "topic read twin/v1/devices/pump-0001/desired" in pump_block


def test_the_mqtt_auth_command_writes_files_once_and_keeps_them(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from twin_stream.cli import app

    first = CliRunner().invoke(app, ["mqtt-auth", str(tmp_path), "--devices", "3"])
    assert first.exit_code == 0, first.output
    credentials = json.loads((tmp_path / "mqtt-credentials.json").read_text())
    assert set(credentials) == {"pump-0001", "vent-0002", "mon-0003", "bridge"}
    assert (tmp_path / "passwd").stat().st_mode & 0o077 == 0  # owner only
    assert "user vent-0002" in (tmp_path / "acl").read_text()
    again = CliRunner().invoke(app, ["mqtt-auth", str(tmp_path), "--devices", "3"])
    assert again.exit_code == 0 and "kept" in again.output
    assert json.loads((tmp_path / "mqtt-credentials.json").read_text()) == credentials
