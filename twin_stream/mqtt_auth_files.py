"""Mosquitto's password file, ACL file and device registry on disk: the one adapter that reads
and writes them.

:func:`write_auth_files` writes the files for a whole fleet (the local stack), keeping the
devices added since; :class:`DeviceAccounts` adds, rotates and revokes one real device's account
in existing files (``twin-stream devices``), leaving every other account as it was, and keeps the
registry of devices (id, type, added). The accounts and the files' contents are
:mod:`twin_stream.mqtt_auth`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from twin_stream.domain.devices import DeviceType
from twin_stream.domain.topics import mqtt_topic
from twin_stream.errors import ConfigError, CredentialsError, PayloadRejected
from twin_stream.mqtt_auth import (
    MqttAccount,
    acl_blocks,
    acl_lines,
    new_password,
    password_entries,
    render_acl,
    render_passwords,
    salted_hash,
)

__all__ = [
    "REGISTRY_FORMAT",
    "DeviceAccounts",
    "DeviceEntry",
    "accounts_from",
    "write_auth_files",
]


def write_auth_files(directory: Path, accounts: Sequence[MqttAccount]) -> dict[str, Path]:
    """Write ``passwd``, ``acl`` and ``mqtt-credentials.json`` (plain passwords, for the
    bridge and simulated devices) under ``directory``; secrets are readable by the owner only.

    Devices added to these files with ``twin-stream devices add`` (in ``devices.json`` beside
    them) keep their accounts: their salted hashes and ACL rules are carried over."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "passwd": directory / "passwd",
        "acl": directory / "acl",
        "credentials": directory / "mqtt-credentials.json",
    }
    passwords = {a.username: salted_hash(a.password) for a in accounts}
    acl = {a.username: acl_lines(a.username, a.role) for a in accounts}
    if (directory / "devices.json").exists() and paths["passwd"].exists():
        registered = DeviceAccounts(paths["passwd"], paths["acl"], directory / "devices.json")
        for device_id, hashed in registered.registered_hashes().items():
            if device_id not in passwords:
                passwords[device_id] = hashed
                acl[device_id] = acl_lines(device_id, "device")
    paths["passwd"].write_text(render_passwords(passwords))
    paths["acl"].write_text(render_acl(acl))
    paths["credentials"].write_text(
        json.dumps({a.username: {"password": a.password, "role": a.role} for a in accounts})
    )
    for secret in (paths["passwd"], paths["credentials"]):
        secret.chmod(0o600)
    return paths


# --- one real device at a time: twin-stream devices ----------------------------------------

#: The registry file's format name.
REGISTRY_FORMAT: Final = "twin-stream-devices/1"


@dataclass(frozen=True)
class DeviceEntry:
    """A device account: its id and, for a device added with ``devices add``, its type and when
    it was added (None for the local stack's simulated fleet)."""

    device_id: str
    device_type: str | None
    added: datetime | None


class DeviceAccounts:
    """Mosquitto's password file and ACL file and the device registry, changed one device at a
    time under an exclusive lock, each file replaced in one rename (the broker never reads a
    half-written file). The broker reads them again on SIGHUP."""

    def __init__(self, password_file: Path, acl_file: Path, registry_file: Path) -> None:
        self.password_file = password_file
        self.acl_file = acl_file
        self.registry_file = registry_file

    # -- reading -----------------------------------------------------------------------------

    def _read(self, path: Path, default: str | None = None) -> str:
        try:
            return path.read_text()
        except FileNotFoundError:
            if default is not None:
                return default
            raise CredentialsError(f"{path} does not exist") from None
        except OSError as e:
            raise CredentialsError(f"cannot read {path}: {e}") from e

    def _load(self) -> tuple[dict[str, str], dict[str, list[str]], dict[str, DeviceEntry]]:
        try:
            passwords = password_entries(self._read(self.password_file))
            acl = acl_blocks(self._read(self.acl_file))
        except ValueError as e:
            raise CredentialsError(f"{self.password_file} or {self.acl_file}: {e}") from e
        body = self._read(self.registry_file, default=json.dumps({"format": REGISTRY_FORMAT}))
        try:
            registry = json.loads(body)
            if registry.get("format") != REGISTRY_FORMAT:
                raise ValueError(f"not a {REGISTRY_FORMAT} document")
            entries = {
                d["device_id"]: DeviceEntry(
                    d["device_id"], d["device_type"], datetime.fromisoformat(d["added"])
                )
                for d in registry.get("devices", [])
            }
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CredentialsError(f"{self.registry_file}: not a device registry ({e})") from e
        return passwords, acl, entries

    def _device(self, device_id: str, acl: dict[str, list[str]], passwords: dict[str, str]) -> None:
        """Raise unless ``device_id`` is a device account (not a service account) of the files."""
        if device_id not in passwords:
            raise CredentialsError(f"no device {device_id!r} in {self.password_file}")
        if acl.get(device_id) != acl_lines(device_id, "device"):
            raise CredentialsError(
                f"{device_id!r} is not a device account (its ACL is not a device's)"
            )

    def registered_hashes(self) -> dict[str, str]:
        """The salted hashes of the devices added with ``devices add`` (to keep them when the
        files are made afresh)."""
        passwords, _, entries = self._load()
        return {d: passwords[d] for d in entries if d in passwords}

    def devices(self) -> list[DeviceEntry]:
        """Every device account: those added with ``devices add`` and the others (the local
        stack's fleet), by id."""
        passwords, acl, entries = self._load()
        found = dict(entries)
        for user in passwords:
            if user not in found and acl.get(user) == _device_lines_or_none(user):
                found[user] = DeviceEntry(user, None, None)
        return [found[k] for k in sorted(found)]

    # -- changing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.registry_file.with_name(self.registry_file.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(lock_path, "a")  # noqa: SIM115 (held across the yield)
        except OSError as e:
            raise CredentialsError(f"cannot lock {lock_path}: {e}") from e
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, path: Path, text: str, mode: int) -> None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            pass
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as e:
            raise CredentialsError(f"cannot write {path}: {e}") from e

    def _save(
        self,
        passwords: dict[str, str],
        acl: dict[str, list[str]],
        entries: dict[str, DeviceEntry],
    ) -> None:
        registry = {
            "format": REGISTRY_FORMAT,
            "devices": [
                {
                    "device_id": e.device_id,
                    "device_type": e.device_type,
                    "added": e.added.isoformat() if e.added else None,
                }
                for e in entries.values()
                if e.added is not None
            ],
        }
        # The ACL first: a device is never in the password file without its rules.
        self._write(self.acl_file, render_acl(acl), 0o644)
        self._write(self.password_file, render_passwords(passwords), 0o600)
        self._write(self.registry_file, json.dumps(registry, indent=2) + "\n", 0o600)

    def add(self, device_id: str, device_type: str, *, now: datetime) -> MqttAccount:
        """A new device account with a fresh password (returned, and stored only hashed)."""
        try:
            mqtt_topic(device_id, "telemetry")
        except PayloadRejected as e:
            raise CredentialsError(f"not a device id: {e.reason}") from e
        if device_type not in set(DeviceType):
            known = ", ".join(t.value for t in DeviceType)
            raise CredentialsError(f"unknown device type {device_type!r}; known: {known}")
        with self._locked():
            passwords, acl, entries = self._load()
            if device_id in passwords or device_id in acl:
                raise CredentialsError(f"{device_id!r} exists; rotate or revoke it")
            account = MqttAccount(device_id, new_password(), "device")
            passwords[device_id] = salted_hash(account.password)
            acl[device_id] = acl_lines(device_id, "device")
            entries[device_id] = DeviceEntry(device_id, device_type, now)
            self._save(passwords, acl, entries)
        return account

    def rotate(self, device_id: str) -> MqttAccount:
        """A new password for a device (returned); the old one stops working."""
        with self._locked():
            passwords, acl, entries = self._load()
            self._device(device_id, acl, passwords)
            account = MqttAccount(device_id, new_password(), "device")
            passwords[device_id] = salted_hash(account.password)
            self._save(passwords, acl, entries)
        return account

    def revoke(self, device_id: str) -> None:
        """Remove a device's account, its ACL rules and its registry entry."""
        with self._locked():
            passwords, acl, entries = self._load()
            self._device(device_id, acl, passwords)
            del passwords[device_id], acl[device_id]
            entries.pop(device_id, None)
            self._save(passwords, acl, entries)


def _device_lines_or_none(username: str) -> list[str] | None:
    try:
        return acl_lines(username, "device")
    except PayloadRejected:  # not a device id: a service account's name
        return None


def accounts_from(directory: Path) -> DeviceAccounts:
    """The accounts of the files :func:`write_auth_files` wrote under ``directory`` (the
    registry beside them)."""
    if not (directory / "passwd").exists():
        raise ConfigError(f"no Mosquitto password file in {directory}")
    return DeviceAccounts(directory / "passwd", directory / "acl", directory / "devices.json")
