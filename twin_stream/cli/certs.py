"""``twin-stream certs``: a private CA and the certificates of MQTT over TLS, for docker compose
or a real broker (the local stack makes its own with the same code)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_stream.cli._common import console, one_line_errors

certs_app = typer.Typer(help="Make the CA and certificates of MQTT over TLS.")


@certs_app.command("make")
@one_line_errors
def certs_make(
    directory: Annotated[
        Path, typer.Argument(help="Where to write ca/, server/, public/, clients/")
    ],
    host: Annotated[
        list[str],
        typer.Option(
            "--host", help="A name (or IP address) clients dial the broker by (repeatable)"
        ),
    ],
    client: Annotated[
        list[str] | None,
        typer.Option("--client", help="Also issue a client certificate for NAME (repeatable)"),
    ] = None,
    days: Annotated[int, typer.Option(help="Days the new certificates are valid")] = 397,
) -> None:
    """Make (or keep, if still good) a private CA, the broker's certificate for every --host and
    the client certificates asked for. Give the broker server/, its clients public/ca.crt, each
    client its clients/NAME/; keep ca/ca.key private (it signs every certificate)."""
    from twin_stream.devtools.stack.certs import client_files, server_files

    server = server_files(directory, host, days=days)
    console.print(f"broker (Mosquitto cafile, certfile, keyfile): {server.cert_file.parent}/")
    console.print(f"clients verify the broker with: {directory / 'public' / 'ca.crt'}")
    for name in client or []:
        files = client_files(directory, name, days=days)
        console.print(f"client {name}: {files.cert_file}, {files.key_file}")
    console.print(f"keep private: {directory / 'ca' / 'ca.key'}")
