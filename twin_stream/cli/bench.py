"""``twin-stream bench``: benchmarks, each side by side with a peer in one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin_stream.cli._common import one_line_errors, progress_bar
from twin_stream.devtools.bench.bridge import bench_bridge
from twin_stream.devtools.bench.detect import bench_detect
from twin_stream.devtools.bench.pipeline import bench_e2e, bench_worker
from twin_stream.devtools.bench.simulate import bench_simulate

bench_app = typer.Typer(help="Benchmarks (figures go to BENCHMARKS.md).", no_args_is_help=True)
console = Console(stderr=True)


def _show(title: str, figures: dict[str, object]) -> None:
    table = Table("figure", "value", title=title)
    for key, value in figures.items():
        if key != "machine":
            table.add_row(key, str(value))
    Console().print(table)


@bench_app.command("simulate")
@one_line_errors
def simulate(
    devices: Annotated[int, typer.Option(help="Simulated devices (one MQTT client each)")] = 50,
    rate: Annotated[float, typer.Option(help="Readings/s each device tries to send")] = 400.0,
    duration: Annotated[float, typer.Option(help="Seconds of publishing")] = 10.0,
    peer_count: Annotated[int, typer.Option(help="Messages for the mosquitto_pub peer")] = 50_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Readings/s one simulator process publishes into Mosquitto, vs mosquitto_pub."""
    with progress_bar(f"{devices} devices publishing for {duration:g} s") as progress:
        figures = bench_simulate(
            devices=devices,
            rate_hz=rate,
            duration_s=duration,
            peer_count=peer_count,
            progress=progress,
        )
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        _show("bench simulate", figures)


@bench_app.command("bridge")
@one_line_errors
def bridge(
    devices: Annotated[int, typer.Option(help="Devices whose backlog is drained")] = 10,
    per_device: Annotated[int, typer.Option(help="Queued readings per device")] = 5000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Bridge msgs/s MQTT -> Kafka, vs mosquitto_sub | kcat -P on the same broker."""
    with console.status("draining the same backlog through the bridge and the C pipeline..."):
        figures = bench_bridge(devices=devices, per_device=per_device)
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        _show("bench bridge", figures)


@bench_app.command("worker")
@one_line_errors
def worker(
    devices: Annotated[int, typer.Option(help="Devices in the backlog")] = 50,
    per_device: Annotated[int, typer.Option(help="Readings per device")] = 400,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Worker events/s vs a bare aiokafka loop running the same domain code."""
    with console.status("draining the same backlog through the Faust worker and the bare loop"):
        figures = bench_worker(devices=devices, per_device=per_device)
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        _show("bench worker", figures)


@bench_app.command("e2e")
@one_line_errors
def e2e(
    rate: Annotated[list[int] | None, typer.Option(help="Total msgs/s (repeatable)")] = None,
    duration: Annotated[float, typer.Option(help="Seconds per rate")] = 30.0,
    devices: Annotated[int, typer.Option(help="Simulated devices")] = 50,
    find_max: Annotated[
        bool,
        typer.Option(
            "--find-max",
            help="Step the rate up (250, 500, 1000, ...) until p99 passes --p99-limit-ms or a "
            "reading is lost; report the highest rate that kept both",
        ),
    ] = False,
    p99_limit_ms: Annotated[float, typer.Option(help="The p99 limit of --find-max")] = 1000.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """End-to-end latency publish -> score (p50, p99) through the whole pipeline."""
    with console.status("running the pipeline..."):
        figures = bench_e2e(
            rates=tuple(rate or [1000, 5000]),
            duration_s=duration,
            devices=devices,
            find_max_p99_ms=p99_limit_ms if find_max else None,
        )
    if find_max:
        if as_json:
            typer.echo(json.dumps(figures))
        else:
            for run in figures["runs"]:
                _show(f"bench e2e at {run['rate']} msgs/s", run)
            console.print(
                f"highest rate with p99 <= {p99_limit_ms:g} ms and nothing lost: "
                f"{figures['max_rate']} msgs/s"
            )
        return
    if as_json:
        # one rate: one object with the documented keys; several: a list of them
        runs = [{**run, "machine": figures["machine"]} for run in figures["runs"]]
        typer.echo(json.dumps(runs[0] if len(runs) == 1 else runs))
    else:
        for run in figures["runs"]:
            _show(f"bench e2e at {run['rate']} msgs/s", run)


@bench_app.command("profile-worker")
@one_line_errors
def profile_worker(
    out: Annotated[Path, typer.Option(help="py-spy's raw (collapsed) stacks")] = Path(
        "worker-profile.txt"
    ),
    per_device: Annotated[int, typer.Option(help="Readings per device (50 devices)")] = 1200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Profile `twin-stream worker` with py-spy (--idle --threads) while it drains a backlog;
    print the main thread's top functions by share of samples."""
    from twin_stream.devtools.bench.profile import profile_worker as run

    with console.status("profiling the worker on a backlog (needs py-spy on PATH)..."):
        figures = run(out, per_device=per_device)
    if as_json:
        typer.echo(json.dumps(figures))
        return
    for kind in ("inclusive", "self"):
        table = Table("share %", "function", title=f"main thread, {kind}")
        for name, share in figures[kind].items():
            table.add_row(f"{share:.1f}", name)
        Console().print(table)


@bench_app.command("detect")
@one_line_errors
def detect(
    events: Annotated[int, typer.Option(help="Timed readings through one monitor")] = 20_000,
    warmup: Annotated[int, typer.Option(help="Readings before timing starts")] = 1_000,
    devices: Annotated[int, typer.Option(help="Monitors held for the RSS figure")] = 10_000,
    per_device: Annotated[int, typer.Option(help="Readings fed to each held monitor")] = 200,
    serialize_after: Annotated[int, typer.Option(help="Readings before dumps()")] = 5_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """DeviceMonitor's cost: us per reading, cold start, state size, RSS of 10k devices."""
    with progress_bar("DeviceMonitor: per event, cold start, state, RSS") as progress:
        figures = bench_detect(
            events=events,
            warmup=warmup,
            serialize_after=serialize_after,
            rss_devices=devices,
            readings_per_device=per_device,
            progress=progress,
        )
    if as_json:
        typer.echo(json.dumps(figures))
        return
    table = Table("figure", "value", "target", title="bench detect")
    targets = figures["targets"]
    for key, value in figures.items():
        if key not in ("machine", "targets"):
            target = targets.get(key)
            table.add_row(key, str(value), "" if target is None else f"<= {target}")
    Console().print(table)
