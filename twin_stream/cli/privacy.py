"""``twin-stream privacy scan``: where the platform holds what identifies a person
(:mod:`twin_stream.privacy_scan`; the patterns: docs/security.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from twin_stream.cli._common import console, one_line_errors
from twin_stream.cli._endpoints import Endpoints
from twin_stream.config import Settings
from twin_stream.domain.topics import kafka_topics, worker_changelogs
from twin_stream.kafka_security import kafka_python_options
from twin_stream.privacy_scan import Finding, scan_influx, scan_kafka

__all__ = ["privacy_app"]

privacy_app = typer.Typer(
    help="Find what identifies a person in what the platform stores.", no_args_is_help=True
)

#: The default window: the last day.
DEFAULT_WINDOW = timedelta(days=1)


@privacy_app.command("scan")
@one_line_errors
def scan(
    ctx: typer.Context,
    since: Annotated[
        datetime | None,
        typer.Option(
            help="Scan what was written from this time on (ISO 8601, UTC if no zone; "
            "default: the last 24 hours)"
        ),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Scan everything kept, whatever its time")
    ] = False,
    influx: Annotated[
        bool, typer.Option(help="Scan the InfluxDB measurements too (TWIN_INFLUX__*)")
    ] = True,
    topic_prefix: Annotated[str, typer.Option(help="Kafka topic prefix")] = "twin",
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per finding, then a summary")
    ] = False,
) -> None:
    """Read every Kafka topic the platform owns (twin.*, dead letters' payloads included, and
    the workers' changelogs) and every InfluxDB measurement over a window, and report each
    match of the identifier patterns (names, MRN, dates of birth, national ids, addresses,
    phone numbers, e-mail addresses, HL7 PID/NK1 segments): where, field, kind and count,
    never the value. Exit status 1 if anything was found, 0 if nothing."""
    settings: Settings = ctx.obj
    if everything:
        window: datetime | None = None
    elif since is None:
        window = datetime.now(UTC) - DEFAULT_WINDOW
    else:
        window = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    endpoints = Endpoints(settings)
    bootstrap = endpoints.kafka_bootstrap()
    topics = [*kafka_topics(topic_prefix).values(), *worker_changelogs(topic_prefix).values()]
    with console.status(f"scanning {len(topics)} Kafka topics..."):
        kafka = scan_kafka(bootstrap, kafka_python_options(settings.kafka), topics, since=window)
    findings: list[Finding] = list(kafka.findings)
    points = 0
    if influx:
        url = endpoints.influx_url()
        with console.status(f"scanning InfluxDB {settings.influx.bucket}..."):
            stored = scan_influx(
                url,
                settings.influx.token.get_secret_value(),
                settings.influx.bucket,
                since=window,
            )
        findings.extend(stored.findings)
        points = stored.points
    scope = "everything kept" if window is None else f"from {window.isoformat()}"
    summary = (
        f"{kafka.records} records of {len(topics) - len(kafka.missing_topics)} topics"
        + (f" and {points} points of InfluxDB" if influx else "")
        + f" ({scope}): {sum(f.count for f in findings)} identifiers found"
    )
    if as_json:
        for f in findings:
            typer.echo(
                json.dumps(
                    {
                        "source": f.source,
                        "where": f.where,
                        "field": f.field,
                        "kind": f.kind,
                        "count": f.count,
                    }
                )
            )
    elif findings:
        table = Table("source", "topic or measurement", "field", "kind", "count")
        for f in findings:
            table.add_row(f.source, f.where, f.field, f.kind, str(f.count))
        console.print(table)
    if kafka.missing_topics:
        console.print(f"[yellow]not there (nothing to scan):[/] {', '.join(kafka.missing_topics)}")
    console.print(summary)
    if findings:
        raise typer.Exit(code=1)
