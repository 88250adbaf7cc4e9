"""``twin-stream tokens add|list|revoke``: the twin API's bearer tokens.

The tokens file (``TWIN_API__TOKENS_FILE``) holds salted hashes only; a new token is printed
once, on stdout, and is nowhere else. The workers re-read the file when it changes, so a revoked
token is refused from the next request on. With ``TWIN_API__TOKENS`` set (the file's JSON, for
compose) the workers read that instead, so ``add`` and ``revoke`` refuse to change a file
nobody reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.auth import ROLES, TokenFile, TokenStore
from twin_stream.cli._common import JsonOption, console, one_line_errors
from twin_stream.config import Settings
from twin_stream.errors import ConfigError

tokens_app = typer.Typer(help="Bearer tokens of the twin API (viewer, operator, admin).")


def _file(settings: Settings) -> TokenFile:
    if settings.api.tokens:
        raise ConfigError(
            "TWIN_API__TOKENS is set: the workers read their tokens from it, not from "
            f"{settings.api.tokens_file}; unset it to manage the file, then copy the file's "
            "contents into it"
        )
    return TokenFile(settings.api.tokens_file)


@tokens_app.command("add")
@one_line_errors
def tokens_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who holds the token (shown in the audit trail)")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")] = "viewer",
) -> None:
    """Make a token and print it, once: it is stored only as a salted hash."""
    tokens = _file(ctx.obj)
    token: list[str] = []

    def add(store: TokenStore) -> TokenStore:
        new, made = store.add(name, role, now=datetime.now(UTC))
        token.append(made)
        return new

    tokens.change(add)
    typer.echo(token[0])
    console.print(
        f"token {name!r} ({role}) added to {tokens.path}; it is shown only now. "
        "Send it as 'Authorization: Bearer <token>'.",
        highlight=False,
    )


@tokens_app.command("list")
@one_line_errors
def tokens_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every token's name, role and creation time (never a token or a hash)."""
    settings: Settings = ctx.obj
    if settings.api.tokens:
        store, source = TokenStore.from_json(settings.api.tokens, "TWIN_API__TOKENS"), None
    else:
        store, source = TokenFile(settings.api.tokens_file).load(), settings.api.tokens_file
    rows = [
        {"name": r.name, "role": r.role, "created": r.created.isoformat()} for r in store.records
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("name", "role", "created")
    for row in rows:
        table.add_row(row["name"], row["role"], row["created"])
    Console().print(table)
    console.print(f"from {source or 'TWIN_API__TOKENS'}", highlight=False)


@tokens_app.command("revoke")
@one_line_errors
def tokens_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name")]
) -> None:
    """Remove a token: the workers refuse it from their next request on."""
    tokens = _file(ctx.obj)
    tokens.change(lambda store: store.revoke(name))
    console.print(f"token {name!r} revoked", highlight=False)
