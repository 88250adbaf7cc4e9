"""``twin-stream devices add|rotate|revoke|list``: real devices' MQTT accounts.

Each device gets its own login (its id) and a random password, hashed into Mosquitto's password
file, and ACL rules for its own topics only. A new password is printed once, on stdout, and is
stored nowhere in clear. Other devices' accounts are left as they are.

The files are ``TWIN_DEVICES__PASSWORD_FILE``, ``TWIN_DEVICES__ACL_FILE`` and
``TWIN_DEVICES__REGISTRY_FILE``, by default those of the local stack's Mosquitto while
``twin-stream stack up`` runs; Mosquitto reads them again on SIGHUP, which the command sends to
the local stack's broker, and otherwise says that the broker must reload. On reload Mosquitto
checks its connected clients again: a revoked device that is online is disconnected.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli._common import JsonOption, console, one_line_errors
from twin_stream.config import Settings
from twin_stream.devtools import stack as local_stack
from twin_stream.devtools.stack.processes import pid_alive
from twin_stream.devtools.stack.state import is_ours
from twin_stream.domain.devices import DeviceType
from twin_stream.domain.topics import DEVICE_TO_PLATFORM, PLATFORM_TO_DEVICE, mqtt_topic
from twin_stream.errors import ConfigError, TwinStreamError
from twin_stream.mqtt_auth import MqttAccount
from twin_stream.mqtt_auth_files import DeviceAccounts

devices_app = typer.Typer(help="Real devices' MQTT accounts (Mosquitto password file and ACL).")

DeviceId = Annotated[str, typer.Argument(help="The device's id (its MQTT user name)")]
_SETTINGS = "TWIN_DEVICES__PASSWORD_FILE, TWIN_DEVICES__ACL_FILE, TWIN_DEVICES__REGISTRY_FILE"


def _stack_mosquitto(settings: Settings) -> local_stack.ServiceInfo | None:
    try:
        state = local_stack.Stack.load(settings.stack.dir)
    except TwinStreamError:
        return None
    return state.services.get("mosquitto")


def _accounts(settings: Settings) -> tuple[DeviceAccounts, local_stack.ServiceInfo | None]:
    """The files from the settings, each defaulting to the running local stack's."""
    chosen = settings.devices
    broker = _stack_mosquitto(settings)
    if broker is None or not pid_alive(broker.pid):
        if None in (chosen.password_file, chosen.acl_file, chosen.registry_file):
            raise ConfigError(
                f"set {_SETTINGS}, or start the dev stack with `twin-stream stack up` "
                f"(none is running under {settings.stack.dir})"
            )
        broker = None
    directory = Path(broker.data_dir) if broker else Path()
    accounts = DeviceAccounts(
        chosen.password_file or directory / "passwd",
        chosen.acl_file or directory / "acl",
        chosen.registry_file or directory / "devices.json",
    )
    if broker is not None and accounts.password_file.resolve() != (directory / "passwd").resolve():
        broker = None  # not the files this broker reads
    return accounts, broker


def _reload(broker: local_stack.ServiceInfo | None) -> None:
    """SIGHUP to the local stack's Mosquitto (it reads its password and ACL files again), or
    say that the broker must reload."""
    if broker is not None and pid_alive(broker.pid) and is_ours(broker):
        os.kill(broker.pid, signal.SIGHUP)
        console.print(f"Mosquitto (pid {broker.pid}) reloads its password and ACL files")
    else:
        console.print(
            "[yellow]the broker must reload[/]: send Mosquitto SIGHUP (or restart it) to apply "
            "the change"
        )


def _print_account(account: MqttAccount, device_type: str | None, as_json: bool) -> None:
    publishes = [mqtt_topic(account.username, c) for c in DEVICE_TO_PLATFORM]
    subscribes = [mqtt_topic(account.username, c) for c in PLATFORM_TO_DEVICE]
    if as_json:
        body = {
            "device_id": account.username,
            "device_type": device_type,
            "username": account.username,
            "password": account.password,
            "publishes": publishes,
            "subscribes": subscribes,
        }
        typer.echo(json.dumps(body))
        return
    typer.echo(f"device_id:  {account.username}")
    typer.echo(f"username:   {account.username}")
    typer.echo(f"password:   {account.password}")
    typer.echo(f"publishes:  {', '.join(publishes)}")
    typer.echo(f"subscribes: {', '.join(subscribes)}")
    console.print("the password is shown only now; only its salted hash is stored")


@devices_app.command("add")
@one_line_errors
def devices_add(
    ctx: typer.Context,
    device_id: DeviceId,
    device_type: Annotated[
        str,
        typer.Option("--type", help=f"One of: {', '.join(t.value for t in DeviceType)}"),
    ],
    as_json: JsonOption = False,
) -> None:
    """Make a device's MQTT account and ACL entry; print its password, once."""
    accounts, broker = _accounts(ctx.obj)
    account = accounts.add(device_id, device_type, now=datetime.now(UTC))
    _print_account(account, device_type, as_json)
    _reload(broker)


@devices_app.command("rotate")
@one_line_errors
def devices_rotate(ctx: typer.Context, device_id: DeviceId, as_json: JsonOption = False) -> None:
    """Give a device a new password (printed once); the old one stops working."""
    accounts, broker = _accounts(ctx.obj)
    account = accounts.rotate(device_id)
    entry = next((d for d in accounts.devices() if d.device_id == device_id), None)
    _print_account(account, entry.device_type if entry else None, as_json)
    _reload(broker)


@devices_app.command("revoke")
@one_line_errors
def devices_revoke(ctx: typer.Context, device_id: DeviceId) -> None:
    """Remove a device's account and ACL entry: it can no longer log in."""
    accounts, broker = _accounts(ctx.obj)
    accounts.revoke(device_id)
    console.print(f"device {device_id!r} revoked", highlight=False)
    _reload(broker)


@devices_app.command("list")
@one_line_errors
def devices_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every device account: id, type and when it was added (the stack's simulated fleet has
    neither)."""
    accounts, _ = _accounts(ctx.obj)
    rows = [
        {
            "device_id": d.device_id,
            "device_type": d.device_type,
            "added": d.added.isoformat() if d.added else None,
        }
        for d in accounts.devices()
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("device_id", "type", "added")
    for row in rows:
        table.add_row(row["device_id"], row["device_type"] or "-", row["added"] or "-")
    Console().print(table)
