"""The simulated fleet behind ``twin-stream simulate``: live over MQTT, or fast-forwarded."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from simulators.fast_forward import write_dataset
from simulators.fleet import FleetPlan
from simulators.mqtt_fleet import FleetStats, MqttFleet
from twin_stream.config import Settings, parse_mqtt_url
from twin_stream.devtools import stack as local_stack
from twin_stream.errors import ConfigError, TwinStreamError

__all__ = ["FleetOptions", "fast_forward", "resolve_mqtt", "run_live"]


@dataclass(frozen=True)
class FleetOptions:
    devices: int = 20
    fault_fraction: float = 0.2
    seed: int = 1


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


def fast_forward(
    fleet: FleetOptions,
    out: Path,
    *,
    hours: float,
    interval_s: float,
    progress: Callable[[float], None] | None = None,
) -> tuple[int, int]:
    """Write a dataset of ``hours`` simulated hours; returns (readings, faults)."""
    plan = FleetPlan.generate(
        fleet.devices,
        hours=hours,
        fault_fraction=fleet.fault_fraction,
        seed=fleet.seed,
        sample_interval_s=interval_s,
    )
    count = write_dataset(plan, out, interval_s=interval_s, progress=progress)
    return count, len(plan.labels())


def run_live(
    fleet: FleetOptions,
    url: str,
    passwords: dict[str, str],
    ca_file: Path | None,
    *,
    rate_hz: float,
    duration_s: float,
    speed: float,
    progress: Callable[[float], None] | None = None,
) -> FleetStats:
    """Publish the fleet's readings to the broker at ``url`` for ``duration_s`` seconds."""
    try:
        host, port, tls = parse_mqtt_url(url)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    # The live run's simulated clock covers duration x speed seconds.
    now = datetime.now(UTC)  # the fleet's simulated day starts at the current time of day
    plan = FleetPlan.generate(
        fleet.devices,
        hours=duration_s * speed / 3600.0,
        fault_fraction=fleet.fault_fraction,
        seed=fleet.seed,
        start_hour=now.hour + now.minute / 60,
    )
    context = ssl.create_default_context(cafile=ca_file) if tls else None
    mqtt_fleet = MqttFleet(
        plan, host=host, port=port, passwords=passwords, rate_hz=rate_hz, speed=speed, tls=context
    )
    return mqtt_fleet.run(duration_s, progress=progress)
