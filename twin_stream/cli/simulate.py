"""``twin-stream simulate``: run the simulated fleet live over MQTT or fast-forward it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_stream.cli._common import console, fail, progress_bar
from twin_stream.config import Settings
from twin_stream.errors import TwinStreamError


def simulate(
    ctx: typer.Context,
    devices: Annotated[int, typer.Option(help="Devices in the fleet")] = 20,
    rate: Annotated[float, typer.Option(help="Readings per second per device (live)")] = 1.0,
    fault_fraction: Annotated[float, typer.Option(help="Share of devices with a fault")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same fleet and faults")] = 1,
    duration: Annotated[float, typer.Option(help="Seconds to run (live)")] = 60.0,
    speed: Annotated[float, typer.Option(help="Simulated clock speed-up (live)")] = 1.0,
    mqtt: Annotated[
        str | None,
        typer.Option(help="mqtt://host:port or mqtts://host:port (default: local stack)"),
    ] = None,
    credentials: Annotated[
        Path | None, typer.Option(help="Device passwords JSON (default: local stack's)")
    ] = None,
    fast_forward: Annotated[
        bool, typer.Option("--fast-forward", help="Simulated clock, no network: write a dataset")
    ] = False,
    hours: Annotated[float, typer.Option(help="Simulated hours (fast-forward)")] = 24.0,
    interval: Annotated[float, typer.Option(help="Seconds between readings (fast-forward)")] = 60.0,
    out: Annotated[Path | None, typer.Option(help="Output folder (fast-forward)")] = None,
) -> None:
    """Run a simulated fleet of medical devices, live over MQTT or fast-forwarded to a dataset."""
    from twin_stream.devtools import simulate as sim

    fleet = sim.FleetOptions(devices=devices, fault_fraction=fault_fraction, seed=seed)
    if fast_forward:
        if out is None:
            raise typer.BadParameter("--fast-forward needs --out DIR")
        with progress_bar(f"simulating {devices} devices x {hours:g} h") as progress:
            count, faults = sim.fast_forward(
                fleet, out, hours=hours, interval_s=interval, progress=progress
            )
        console.print(f"wrote {count} readings and {faults} faults to {out}")
        return

    settings: Settings = ctx.obj
    try:
        url, passwords, tls = sim.resolve_mqtt(settings, mqtt, credentials)
        with progress_bar(f"{devices} devices publishing to {url}") as progress:
            stats = sim.run_live(
                fleet,
                url,
                passwords,
                tls,
                rate_hz=rate,
                duration_s=duration,
                speed=speed,
                progress=progress,
            )
    except TwinStreamError as e:
        raise fail(e) from e
    console.print(
        f"published {stats.published} readings, {stats.acked} acknowledged, "
        f"{stats.dropped} dropped; {stats.desired_received} desired-state messages received"
    )
