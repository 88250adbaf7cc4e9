"""``twin-stream grafana``: export the provisioning files, or push them to a running Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from twin_stream.cli._common import fail
from twin_stream.config import Settings
from twin_stream.errors import ConfigError, TwinStreamError
from twin_stream.grafana.provisioning import export as export_files

grafana_app = typer.Typer(
    help="Dashboards, datasource and alert rules as code.", no_args_is_help=True
)


@grafana_app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="Provisioning directory to write")],
) -> None:
    """Write Grafana's file-provisioning layout (datasources/, dashboards/, alerting/)."""
    for path in export_files(directory):
        typer.echo(path)


@grafana_app.command("push")
def push(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="Grafana URL, e.g. http://localhost:3000 [TWIN_GRAFANA__URL]")
    ] = None,
) -> None:
    """Create or update the folder, datasource, dashboards, alert rules, contact point and
    notification policy; objects that already match are left alone.

    The service account token comes from TWIN_GRAFANA__TOKEN (never a command-line argument:
    those show in `ps` and in shell history); the datasource and contact point are filled from
    TWIN_INFLUX__* and TWIN_GRAFANA__ALERT_WEBHOOK_URL."""
    from grafana_client.api import GrafanaApi

    from twin_stream.grafana.push import push as push_all

    settings: Settings = ctx.obj
    try:
        grafana_url = url or settings.grafana.url
        if not grafana_url:
            raise ConfigError("no Grafana URL: pass --url or set TWIN_GRAFANA__URL")
        if settings.grafana.token is None:
            raise ConfigError("set TWIN_GRAFANA__TOKEN to a Grafana service account token")
        api = GrafanaApi.from_url(grafana_url, credential=settings.grafana.token.get_secret_value())
        report = push_all(api, settings.grafana_variables())
    except TwinStreamError as e:
        raise fail(e) from e
    console = Console()
    for name, action in report.actions.items():
        console.print(f"{action:>9}  {name}")
    console.print(f"{len(report.changed)} object(s) changed")
