"""``twin-stream mqtt-auth``: Mosquitto's password file and ACL for the bridge and a fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_stream.domain.devices import fleet_device


def mqtt_auth(
    directory: Annotated[Path, typer.Argument(help="Where to write passwd, acl and credentials")],
    devices: Annotated[int, typer.Option(help="Devices of the simulated fleet")] = 20,
    replace: Annotated[bool, typer.Option(help="Write new passwords even if files exist")] = False,
) -> None:
    """Write a Mosquitto password file and ACL (and the plain credentials the bridge and the
    simulated devices log in with) for the bridge and a fleet of devices."""
    from twin_stream.mqtt_auth import generate_accounts, write_auth_files

    if (directory / "passwd").exists() and not replace:
        typer.echo(f"{directory}: credentials exist, kept (--replace to renew them)")
        return
    accounts = generate_accounts(fleet_device(i)[0] for i in range(1, devices + 1))
    for path in write_auth_files(directory, accounts).values():
        typer.echo(path)
