"""The ``twin-stream`` command: the CLI edge, where settings are read and logging is set up.

One module per command group; ``_common`` holds what they share.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from twin_stream.cli._common import fail
from twin_stream.cli.bench import bench_app
from twin_stream.cli.certs import certs_app
from twin_stream.cli.chaos import chaos
from twin_stream.cli.demo import demo
from twin_stream.cli.devices import devices_app
from twin_stream.cli.dlq import dlq_app
from twin_stream.cli.eval import eval_app
from twin_stream.cli.failures import failures_app, rebaseline
from twin_stream.cli.fuzz import fuzz
from twin_stream.cli.grafana import grafana_app
from twin_stream.cli.mqtt import mqtt_auth
from twin_stream.cli.privacy import privacy_app
from twin_stream.cli.services import bridge, sink, worker
from twin_stream.cli.simulate import simulate
from twin_stream.cli.stack import stack_app
from twin_stream.cli.tokens import tokens_app
from twin_stream.config import load_settings
from twin_stream.errors import TwinStreamError

__all__ = ["app"]

app = typer.Typer(
    help="twin-stream: digital twins of medical devices, streamed.", no_args_is_help=True
)
app.command("demo")(demo)
app.add_typer(stack_app, name="stack")
app.command("simulate")(simulate)
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.add_typer(grafana_app, name="grafana")
app.command("bridge")(bridge)
app.command("worker")(worker)
app.command("sink")(sink)
app.command("mqtt-auth")(mqtt_auth)
app.add_typer(certs_app, name="certs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(devices_app, name="devices")
app.add_typer(dlq_app, name="dlq")
app.add_typer(privacy_app, name="privacy")
app.command("fuzz")(fuzz)
app.command("chaos")(chaos)
app.add_typer(failures_app, name="failures")
app.command("rebaseline")(rebaseline)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kafka-python logs every connection attempt at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)


@app.callback()
def main(
    ctx: typer.Context, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False
) -> None:
    """Read the settings once (``TWIN_*``) and pass them to the command as ``ctx.obj``."""
    _setup_logging(verbose)
    try:
        ctx.obj = load_settings()
    except TwinStreamError as e:
        raise fail(e) from e
