"""``twin-stream simulate``: run the simulated fleet live over MQTT or fast-forward it."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from simulators.fast_forward import write_dataset
from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import MqttFleet
from twin_stream import stack as local_stack
from twin_stream.config import Settings, parse_mqtt_url
from twin_stream.errors import ConfigError, TwinStreamError

console = Console(stderr=True)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr; yields the function that reports the fraction done."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=1.0)
        yield lambda fraction: bar.update(task, completed=fraction)


def resolve_mqtt(
    settings: Settings, url: str | None, credentials: Path | None
) -> tuple[str, dict[str, str], Path | None]:
    """The broker URL and the device passwords: flags, then TWIN_MQTT__*, then the local stack."""
    stack_state: local_stack.StackState | None = None

    def from_stack() -> local_stack.StackState:
        nonlocal stack_state
        if stack_state is None:
            try:
                stack_state = local_stack.Stack.load(settings.stack.dir)
            except TwinStreamError as e:
                raise ConfigError(
                    f"no MQTT broker given (--mqtt or TWIN_MQTT__URL) and no local stack: {e}"
                ) from e
        return stack_state

    mqtt_url = url or settings.mqtt.url or from_stack().url("mosquitto")
    creds_file = (
        credentials
        or settings.mqtt.credentials_file
        or Path(from_stack().services["mosquitto"].extra["credentials_file"])
    )
    try:
        accounts = json.loads(Path(creds_file).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read device credentials from {creds_file}: {e}") from e
    return mqtt_url, {k: v["password"] for k, v in accounts.items()}, settings.mqtt.ca_file


def simulate(
    devices: Annotated[int, typer.Option(help="Devices in the fleet")] = 20,
    rate: Annotated[float, typer.Option(help="Readings per second per device (live)")] = 1.0,
    fault_fraction: Annotated[float, typer.Option(help="Share of devices with a fault")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same fleet and faults")] = 1,
    duration: Annotated[float, typer.Option(help="Seconds to run (live)")] = 60.0,
    speed: Annotated[float, typer.Option(help="Simulated clock speed-up (live)")] = 1.0,
    mqtt: Annotated[
        str | None, typer.Option(help="mqtt://host:port (default: local stack)")
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
    if fast_forward:
        if out is None:
            raise typer.BadParameter("--fast-forward needs --out DIR")
        plan = FleetPlan.generate(
            devices,
            hours=hours,
            fault_fraction=fault_fraction,
            seed=seed,
            sample_interval_s=interval,
        )
        with progress_bar(f"simulating {devices} devices x {hours:g} h") as progress:
            count = write_dataset(
                plan,
                out,
                interval_s=interval,
                progress=progress,
            )
        console.print(f"wrote {count} readings and {len(plan.labels())} faults to {out}")
        return

    settings = Settings()
    try:
        url, passwords, ca_file = resolve_mqtt(settings, mqtt, credentials)
        host, port, tls = parse_mqtt_url(url)
    except (TwinStreamError, ValueError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from e
    # The live run's simulated clock covers duration x speed seconds.
    now = datetime.now(UTC)  # the fleet's simulated day starts at the current time of day
    plan = FleetPlan.generate(
        devices,
        hours=duration * speed / 3600.0,
        fault_fraction=fault_fraction,
        seed=seed,
        start_hour=now.hour + now.minute / 60,
    )
    context = ssl.create_default_context(cafile=ca_file) if tls else None
    fleet = MqttFleet(
        plan, host=host, port=port, passwords=passwords, rate_hz=rate, speed=speed, tls=context
    )
    with progress_bar(f"{devices} devices publishing to {url}") as progress:
        stats = fleet.run(duration, progress=progress)
    console.print(
        f"published {stats.published} readings, {stats.acked} acknowledged, "
        f"{stats.dropped} dropped; {stats.desired_received} desired-state messages received"
    )
