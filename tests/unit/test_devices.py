"""Device onboarding on the files (twin_stream.mqtt_auth_files.DeviceAccounts) and the ``devices``
command: one device's account added, rotated or revoked, every other line left as it was. The
broker's side (logins, ACLs, reload) is tested on the real Mosquitto in
tests/integration/test_devices_mosquitto.py."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin_stream.cli import app as cli
from twin_stream.errors import CredentialsError
from twin_stream.mqtt_auth import (
    BRIDGE_USER,
    acl_blocks,
    acl_lines,
    generate_accounts,
    password_entries,
)
from twin_stream.mqtt_auth_files import DeviceAccounts, write_auth_files

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def verifies(password: str, hashed: str) -> bool:
    """Whether a Mosquitto ``$7$`` (PBKDF2-SHA512) hash is of ``password``."""
    _, algo, iterations, salt, digest = hashed.split("$")
    assert algo == "7"
    expected = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations)
    )
    return base64.b64decode(digest) == expected


@pytest.fixture
def stack_files(tmp_path: Path) -> DeviceAccounts:
    """The files the local stack writes for a fleet of two devices and the bridge."""
    write_auth_files(tmp_path, generate_accounts(["pump-0001", "vent-0002"]))
    return DeviceAccounts(tmp_path / "passwd", tmp_path / "acl", tmp_path / "devices.json")


def _state(accounts: DeviceAccounts) -> tuple[dict[str, str], dict[str, list[str]]]:
    return (
        password_entries(accounts.password_file.read_text()),
        acl_blocks(accounts.acl_file.read_text()),
    )


def _others(state: tuple[dict[str, str], dict[str, list[str]]], but: str) -> object:
    passwords, acl = state
    return (
        {u: h for u, h in passwords.items() if u != but},
        {u: r for u, r in acl.items() if u != but},
    )


def test_add_makes_one_account_with_its_own_topics_and_touches_no_other(
    stack_files: DeviceAccounts,
) -> None:
    before = _state(stack_files)
    account = stack_files.add("pump-0042", "infusion_pump", now=NOW)
    assert account.username == "pump-0042" and len(account.password) >= 24
    passwords, acl = after = _state(stack_files)
    assert verifies(account.password, passwords["pump-0042"])
    assert account.password not in stack_files.password_file.read_text()
    assert acl["pump-0042"] == acl_lines("pump-0042", "device")
    assert all("pump-0042" in rule and "+" not in rule for rule in acl["pump-0042"])
    assert _others(after, "pump-0042") == _others(before, "pump-0042")
    assert stat.S_IMODE(stack_files.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(stack_files.registry_file.stat().st_mode) == 0o600
    registry = json.loads(stack_files.registry_file.read_text())
    assert registry["devices"] == [
        {"device_id": "pump-0042", "device_type": "infusion_pump", "added": NOW.isoformat()}
    ]
    assert account.password not in stack_files.registry_file.read_text()


def test_add_refuses_a_taken_id_a_bad_id_and_an_unknown_type(
    stack_files: DeviceAccounts,
) -> None:
    before = _state(stack_files)
    for device_id, device_type, message in (
        ("pump-0001", "infusion_pump", "'pump-0001' exists"),
        (BRIDGE_USER, "infusion_pump", "'bridge' exists"),
        ("Pump 7", "infusion_pump", "not a device id"),
        ("pump/#", "infusion_pump", "not a device id"),
        ("toaster-0001", "toaster", "unknown device type 'toaster'"),
    ):
        with pytest.raises(CredentialsError, match=message):
            stack_files.add(device_id, device_type, now=NOW)
    assert _state(stack_files) == before


def test_rotate_changes_only_that_devices_password(stack_files: DeviceAccounts) -> None:
    first = stack_files.add("vent-0042", "ventilator", now=NOW)
    before = _state(stack_files)
    second = stack_files.rotate("vent-0042")
    passwords, acl = after = _state(stack_files)
    assert second.password != first.password
    assert verifies(second.password, passwords["vent-0042"])
    assert not verifies(first.password, passwords["vent-0042"])
    assert acl["vent-0042"] == before[1]["vent-0042"]
    assert _others(after, "vent-0042") == _others(before, "vent-0042")
    # The stack's simulated devices can be rotated too; the bridge is not a device.
    stack_files.rotate("pump-0001")
    with pytest.raises(CredentialsError, match="not a device account"):
        stack_files.rotate(BRIDGE_USER)
    with pytest.raises(CredentialsError, match="no device 'mon-0003'"):
        stack_files.rotate("mon-0003")


def test_revoke_removes_the_account_its_rules_and_its_entry_only(
    stack_files: DeviceAccounts,
) -> None:
    stack_files.add("dial-0042", "dialysis_machine", now=NOW)
    stack_files.add("mri-0042", "mri_chiller", now=NOW)
    before = _state(stack_files)
    stack_files.revoke("dial-0042")
    passwords, acl = after = _state(stack_files)
    assert "dial-0042" not in passwords and "dial-0042" not in acl
    assert _others(after, "dial-0042") == _others(before, "dial-0042")
    assert [d.device_id for d in stack_files.devices() if d.added] == ["mri-0042"]
    with pytest.raises(CredentialsError, match="no device 'dial-0042'"):
        stack_files.revoke("dial-0042")
    with pytest.raises(CredentialsError, match="not a device account"):
        stack_files.revoke(BRIDGE_USER)
    assert BRIDGE_USER in password_entries(stack_files.password_file.read_text())


def test_list_shows_every_device_added_or_of_the_fleet(stack_files: DeviceAccounts) -> None:
    stack_files.add("mon-0042", "patient_monitor", now=NOW)
    listed = [(d.device_id, d.device_type, d.added) for d in stack_files.devices()]
    assert listed == [
        ("mon-0042", "patient_monitor", NOW),
        ("pump-0001", None, None),
        ("vent-0002", None, None),
    ]


def test_the_stack_making_its_files_afresh_keeps_added_devices(
    stack_files: DeviceAccounts, tmp_path: Path
) -> None:
    account = stack_files.add("pump-0042", "infusion_pump", now=NOW)
    write_auth_files(tmp_path, generate_accounts(["pump-0001", "vent-0002"]))
    passwords, acl = _state(stack_files)
    assert verifies(account.password, passwords["pump-0042"])
    assert acl["pump-0042"] == acl_lines("pump-0042", "device")
    credentials = json.loads((tmp_path / "mqtt-credentials.json").read_text())
    assert "pump-0042" not in credentials  # its password is nowhere in clear


# --- the devices command ---------------------------------------------------------------


@pytest.fixture
def device_env(
    stack_files: DeviceAccounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> DeviceAccounts:
    monkeypatch.setenv("TWIN_STACK__DIR", str(tmp_path / "no-stack"))
    monkeypatch.setenv("TWIN_DEVICES__PASSWORD_FILE", str(stack_files.password_file))
    monkeypatch.setenv("TWIN_DEVICES__ACL_FILE", str(stack_files.acl_file))
    monkeypatch.setenv("TWIN_DEVICES__REGISTRY_FILE", str(stack_files.registry_file))
    return stack_files


def test_devices_add_prints_the_password_once_and_says_the_broker_must_reload(
    device_env: DeviceAccounts,
) -> None:
    result = CliRunner().invoke(cli, ["devices", "add", "pump-0042", "--type", "infusion_pump"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    password = lines["password"].strip()
    assert result.output.count(password) == 1
    assert lines["publishes"].strip().startswith("twin/v1/devices/pump-0042/telemetry")
    assert lines["subscribes"].strip() == "twin/v1/devices/pump-0042/desired"
    assert "the broker must reload" in result.stderr
    passwords, _ = _state(device_env)
    assert verifies(password, passwords["pump-0042"])
    rotated = CliRunner().invoke(cli, ["devices", "rotate", "pump-0042", "--json"])
    body = json.loads(rotated.stdout)
    assert body["device_type"] == "infusion_pump" and body["password"] != password
    assert verifies(body["password"], _state(device_env)[0]["pump-0042"])


def test_devices_list_and_revoke_and_errors_on_one_line(device_env: DeviceAccounts) -> None:
    CliRunner().invoke(cli, ["devices", "add", "vent-0042", "--type", "ventilator"])
    listed = json.loads(CliRunner().invoke(cli, ["devices", "list", "--json"]).stdout)
    assert [(d["device_id"], d["device_type"]) for d in listed] == [
        ("pump-0001", None),
        ("vent-0002", None),
        ("vent-0042", "ventilator"),
    ]
    assert "password" not in json.dumps(listed)
    assert CliRunner().invoke(cli, ["devices", "revoke", "vent-0042"]).exit_code == 0
    for args, message in (
        (["devices", "revoke", "vent-0042"], "no device 'vent-0042'"),
        (["devices", "add", "pump-0001", "--type", "infusion_pump"], "'pump-0001' exists"),
        (["devices", "rotate", "bridge"], "not a device account"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, args
        assert f"error: {result.output.split('error: ', 1)[1]}".count("\n") == 1
        assert message in result.output and "Traceback" not in result.output


def test_devices_without_files_or_a_stack_name_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_STACK__DIR", str(tmp_path / "no-stack"))
    for name in ("PASSWORD_FILE", "ACL_FILE", "REGISTRY_FILE"):
        monkeypatch.delenv(f"TWIN_DEVICES__{name}", raising=False)
    result = CliRunner().invoke(cli, ["devices", "list"])
    assert result.exit_code == 1
    assert "TWIN_DEVICES__PASSWORD_FILE" in result.output and "stack up" in result.output
