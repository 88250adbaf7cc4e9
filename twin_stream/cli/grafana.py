"""``twin-stream grafana``: export the provisioning files, or push them to a running Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
    url: Annotated[str, typer.Option(help="Grafana URL, e.g. http://localhost:3000")],
    token: Annotated[str, typer.Option(envvar="TWIN_GRAFANA_TOKEN", help="Service account token")],
) -> None:
    """Create or update the folder, datasource, dashboards, alert rules, contact point and
    notification policy; objects that already match are left alone."""
    from grafana_client.api import GrafanaApi

    from twin_stream.grafana.push import push as push_all

    report = push_all(GrafanaApi.from_url(url, credential=token))
    console = Console()
    for name, action in report.actions.items():
        console.print(f"{action:>9}  {name}")
    console.print(f"{len(report.changed)} object(s) changed")
