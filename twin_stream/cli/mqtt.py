"""``twin-stream mqtt-auth``: Mosquitto's password file and ACL for the bridge and a fleet."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin_stream.domain.devices import fleet_device

if TYPE_CHECKING:
    from twin_stream.mqtt_auth import MqttAccount


def mqtt_auth(
    directory: Annotated[Path, typer.Argument(help="Where to write passwd, acl and credentials")],
    devices: Annotated[int, typer.Option(help="Devices of the simulated fleet")] = 20,
    replace: Annotated[bool, typer.Option(help="Write new passwords even if files exist")] = False,
    split: Annotated[
        bool,
        typer.Option(
            "--split",
            help="One folder per service: broker/ (passwd, acl), bridge/ and devices/ "
            "(each mqtt-credentials.json with only those logins)",
        ),
    ] = False,
) -> None:
    """Write a Mosquitto password file and ACL (and the plain credentials the bridge and the
    simulated devices log in with) for the bridge and a fleet of devices."""
    from twin_stream.mqtt_auth import generate_accounts
    from twin_stream.mqtt_auth_files import write_auth_files

    if (directory / ("broker" if split else ".") / "passwd").exists() and not replace:
        typer.echo(f"{directory}: credentials exist, kept (--replace to renew them)")
        return
    accounts = generate_accounts(fleet_device(i)[0] for i in range(1, devices + 1))
    if not split:
        for path in write_auth_files(directory, accounts).values():
            typer.echo(path)
        return
    # The broker gets salted hashes only; the plain passwords go, apart, to whoever logs in.
    broker = write_auth_files(directory / "broker", accounts)
    (directory / "broker" / "mqtt-credentials.json").unlink(missing_ok=True)
    broker.pop("credentials", None)
    for path in [*broker.values(), *_split_credentials(directory, accounts)]:
        typer.echo(path)


def _split_credentials(directory: Path, accounts: Sequence[MqttAccount]) -> list[Path]:
    """``bridge/`` and ``devices/mqtt-credentials.json``: the bridge's login, and every
    device's (for the simulator), each readable by the owner only."""
    written = []
    for folder, role in (("bridge", "bridge"), ("devices", "device")):
        path = directory / folder / "mqtt-credentials.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        logins = {a.username: {"password": a.password, "role": a.role} for a in accounts}
        mine = {name: login for name, login in logins.items() if login["role"] == role}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(mine))
        written.append(path)
    return written
