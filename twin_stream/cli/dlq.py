"""``twin-stream dlq list|show|replay``: what went to the dead-letter topic, why, and sending it
on again once the cause is fixed (:mod:`twin_stream.dlq`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from twin_stream.cli._common import console, one_line_errors
from twin_stream.cli._endpoints import Endpoints
from twin_stream.config import Settings
from twin_stream.dlq import Letter, LetterFilter, read_letters, replay, replay_target
from twin_stream.domain.topics import kafka_topics
from twin_stream.kafka_security import kafka_python_options

__all__ = ["dlq_app"]

dlq_app = typer.Typer(help="Inspect and replay the dead-letter topic.", no_args_is_help=True)

Device = Annotated[str | None, typer.Option(help="Only this device's letters")]
Reason = Annotated[
    str | None, typer.Option(help="Only letters whose rule is this, or whose reason contains it")
]
Since = Annotated[
    datetime | None,
    typer.Option(help="Only letters received from this time on (ISO 8601, UTC if no zone)"),
]
TopicPrefix = Annotated[str, typer.Option(help="Kafka topic prefix")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object per line")]


def _filter(
    device: str | None, reason: str | None, since: datetime | None, ids: list[str] | None = None
) -> LetterFilter:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return LetterFilter(device=device, reason=reason, since=since, ids=frozenset(ids or ()))


def _letters(
    ctx: typer.Context, wanted: LetterFilter, topic_prefix: str
) -> tuple[str, dict[str, object], list[Letter]]:
    settings: Settings = ctx.obj
    bootstrap = Endpoints(settings).kafka_bootstrap()
    options = kafka_python_options(settings.kafka)
    letters: list[Letter] = []
    topic = kafka_topics(topic_prefix)["dlq"]
    with console.status(f"reading {topic}...") as status:
        for item in read_letters(bootstrap, options, wanted, topic=topic):
            if isinstance(item, tuple):
                partition, offset, why = item
                console.print(f"[red]{partition}:{offset} is no dead letter:[/] {why}")
                continue
            letters.append(item)
            status.update(f"reading {topic}... {len(letters)} letters")
    return bootstrap, options, letters


def _summary(letter: Letter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "received_at": letter.letter.received_at.isoformat(),
        "device_id": letter.letter.device_id,
        "source": letter.letter.mqtt_topic,
        "rule": letter.rule,
        "reason": letter.letter.reason,
        "bytes": len(letter.payload),
    }


@dlq_app.command("list")
@one_line_errors
def list_letters(
    ctx: typer.Context,
    device: Device = None,
    reason: Reason = None,
    since: Since = None,
    limit: Annotated[int, typer.Option(help="Show at most the last N that match")] = 100,
    topic_prefix: TopicPrefix = "twin",
    as_json: AsJson = False,
) -> None:
    """The dead letters that match, the newest last: id (partition:offset), when, device, where
    from, and why."""
    _, _, letters = _letters(ctx, _filter(device, reason, since), topic_prefix)
    letters.sort(key=lambda x: (x.letter.received_at, x.partition, x.offset))
    shown = letters[-limit:] if limit > 0 else letters
    if as_json:
        for letter in shown:
            typer.echo(json.dumps(_summary(letter)))
        return
    table = Table("id", "received", "device", "source", "rule", "reason", title="dead letters")
    for letter in shown:
        row = _summary(letter)
        table.add_row(
            row["id"],
            row["received_at"],
            row["device_id"] or "-",
            row["source"],
            row["rule"],
            row["reason"],
        )
    console.print(table)
    console.print(f"{len(letters)} letters match; {len(shown)} shown")


@dlq_app.command("show")
@one_line_errors
def show(
    ctx: typer.Context,
    letter_id: Annotated[str, typer.Argument(help="partition:offset, as `dlq list` shows it")],
    topic_prefix: TopicPrefix = "twin",
) -> None:
    """One dead letter in full: its fields, its payload (as text when it is), and where a
    replay would send it now."""
    _, _, letters = _letters(ctx, _filter(None, None, None, [letter_id]), topic_prefix)
    if not letters:
        raise typer.BadParameter(
            f"no dead letter {letter_id} (ids are partition:offset, see `twin-stream dlq list`)",
            param_hint="LETTER_ID",
        )
    letter = letters[0]
    body = _summary(letter)
    try:
        body["payload"] = letter.payload.decode()
    except UnicodeDecodeError:
        body["payload_base64"] = letter.letter.payload_base64
    target = replay_target(letter, kafka_topics(topic_prefix))
    body["replay"] = (
        f"not replayable: {target.reason}"
        if target.reason is not None
        else f"would go to {target.kafka_topic}"
    )
    typer.echo(json.dumps(body, indent=2))


@dlq_app.command("replay")
@one_line_errors
def replay_letters(
    ctx: typer.Context,
    letter_id: Annotated[
        list[str] | None, typer.Option("--id", help="partition:offset (repeatable)")
    ] = None,
    device: Device = None,
    reason: Reason = None,
    since: Since = None,
    dry_run: Annotated[bool, typer.Option(help="Only say where each would go")] = False,
    topic_prefix: TopicPrefix = "twin",
    as_json: AsJson = False,
) -> None:
    """Send the matching letters' bytes on to their original topic, through the gate they
    failed at (the bridge's validation for device messages). Letters that still fail stay where
    they are, with their reason. At least one filter is required."""
    if not (letter_id or device or reason or since):
        raise typer.BadParameter(
            "say which letters to replay: --id, --device, --reason or --since",
            param_hint="--id/--device/--reason/--since",
        )
    bootstrap, options, letters = _letters(
        ctx, _filter(device, reason, since, letter_id), topic_prefix
    )
    outcomes = replay(
        bootstrap, options, letters, dry_run=dry_run, topics=kafka_topics(topic_prefix)
    )
    sent = sum(o.sent for o in outcomes)
    refused = [o for o in outcomes if o.reason is not None]
    if as_json:
        for o in outcomes:
            typer.echo(
                json.dumps(
                    {"id": o.letter.id, "topic": o.topic, "sent": o.sent, "reason": o.reason}
                )
            )
    else:
        for o in refused:
            console.print(f"[yellow]{o.letter.id} not replayed:[/] {o.reason}")
        verb = "would be sent" if dry_run else "sent"
        console.print(
            f"{len(outcomes)} letters match: "
            f"{len(outcomes) - len(refused) if dry_run else sent} {verb}, "
            f"{len(refused)} not replayable"
        )
