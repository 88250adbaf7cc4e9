"""``twin-stream failures add`` and ``twin-stream rebaseline``: what engineers record of a
device, sent to the twin API (``POST /twins/{id}/failures``, ``POST /twins/{id}/rebaseline``)
with an operator's token from ``TWIN_API__TOKEN`` at ``TWIN_API__URL``.

A failure teaches the device type's fleet model (the health index's signature of a failure,
and so the remaining useful life of the type's other devices); a re-baseline makes the device
learn its normal, its healthy reference too, afresh from now. Both are audited by the API. A
refusal (an unknown device, a time in the future, a role too low) ends the command with the
API's reason on one line.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from twin_stream.cli._common import JsonOption, console, one_line_errors
from twin_stream.config import Settings
from twin_stream.errors import ConfigError, TwinStreamError

__all__ = ["failures_app", "rebaseline"]

failures_app = typer.Typer(help="Device failures the fleet learns from (RUL prediction).")

DeviceArg = Annotated[str, typer.Argument(help="The device's id")]
NoteOption = Annotated[str | None, typer.Option("--note", help="What happened, for the record")]


class ApiRefused(TwinStreamError):
    """The twin API refused the request (its status and reason)."""


def call_api(settings: Settings, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` to ``path`` on the twin API with the operator token; the answer's JSON."""
    if settings.api.token is None:
        raise ConfigError("set TWIN_API__TOKEN to an operator's token of the twin API")
    url = settings.api.url.rstrip("/") + path
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {settings.api.token.get_secret_value()}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            reason = json.loads(raw).get("error", raw.decode(errors="replace"))
        except (ValueError, AttributeError):
            reason = raw.decode(errors="replace")
        raise ApiRefused(f"{url}: refused ({e.code}): {reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise ApiRefused(f"{url}: the twin API does not answer: {e}") from e


def _show(answer: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        typer.echo(json.dumps(answer))
    else:
        console.print(f"{what} of {answer['device_id']} recorded (event {answer['event_id']})")


@failures_app.command("add")
@one_line_errors
def failures_add(
    ctx: typer.Context,
    device_id: DeviceArg,
    at: Annotated[str, typer.Option("--at", help="When it failed (ISO 8601, with a zone)")],
    note: NoteOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record that DEVICE failed at TIME: its type's fleet learns the failure's signature."""
    answer = call_api(ctx.obj, "POST", f"/twins/{device_id}/failures", {"at": at, "note": note})
    _show(answer, as_json, "failure")


@one_line_errors
def rebaseline(
    ctx: typer.Context, device_id: DeviceArg, note: NoteOption = None, as_json: JsonOption = False
) -> None:
    """Learn DEVICE's normal afresh from now (its healthy reference too), as after maintenance."""
    answer = call_api(ctx.obj, "POST", f"/twins/{device_id}/rebaseline", {"note": note})
    _show(answer, as_json, "re-baseline")
