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
from twin_stream.tls import mqtt_tls_context

__all__ = ["FleetOptions", "FleetTls", "fast_forward", "resolve_mqtt", "run_live"]


@dataclass(frozen=True)
class FleetOptions:
    devices: int = 20
    fault_fraction: float = 0.2
    seed: int = 1


@dataclass(frozen=True)
class FleetTls:
    """How the devices verify the broker over ``mqtts://``: the CA file (None: the system's
    CAs) and, if the broker wants client certificates, the folder of each device's
    (``DIR/<device_id>/client.crt`` and ``client.key``)."""

    ca_file: Path | None = None
    client_certs_dir: Path | None = None

    def context_for(self, device_id: str) -> ssl.SSLContext:
        """One device's TLS context (with its own client certificate, if there are some)."""
        if self.client_certs_dir is None:
            return mqtt_tls_context(self.ca_file)
        folder = self.client_certs_dir / device_id
        return mqtt_tls_context(self.ca_file, folder / "client.crt", folder / "client.key")


def resolve_mqtt(
    settings: Settings, url: str | None, credentials: Path | None
) -> tuple[str, dict[str, str], FleetTls]:
    """The broker URL, the device passwords and TLS: flags, then TWIN_MQTT__*, then the local
    stack (whose CA and client certificates go with its own ``mqtts://`` URL)."""
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
    tls = FleetTls(settings.mqtt.ca_file, settings.mqtt.client_certs_dir)
    if mqtt_url.startswith("mqtts://") and tls.ca_file is None:
        tls = _stack_tls(settings, mqtt_url) or tls
    return mqtt_url, {k: v["password"] for k, v in accounts.items()}, tls


def _stack_tls(settings: Settings, url: str) -> FleetTls | None:
    """The local stack's CA (and client certificates) if ``url`` is its TLS listener."""
    try:
        extra = local_stack.Stack.load(settings.stack.dir).services["mosquitto"].extra
    except (TwinStreamError, KeyError):
        return None
    if extra.get("tls_url") != url:
        return None
    certs = settings.mqtt.client_certs_dir or extra.get("client_certs_dir")
    return FleetTls(Path(extra["ca_file"]), Path(certs) if certs else None)


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
    tls: FleetTls,
    *,
    rate_hz: float,
    duration_s: float,
    speed: float,
    progress: Callable[[float], None] | None = None,
) -> FleetStats:
    """Publish the fleet's readings to the broker at ``url`` for ``duration_s`` seconds; over
    ``mqtts://``, each device verifies the broker as ``tls`` says. A broker that cannot be
    reached or does not verify is an :class:`~twin_stream.errors.MqttError`."""
    host, port, use_tls = parse_mqtt_url(url)
    # The live run's simulated clock covers duration x speed seconds.
    now = datetime.now(UTC)  # the fleet's simulated day starts at the current time of day
    plan = FleetPlan.generate(
        fleet.devices,
        hours=duration_s * speed / 3600.0,
        fault_fraction=fleet.fault_fraction,
        seed=fleet.seed,
        start_hour=now.hour + now.minute / 60,
    )
    contexts: ssl.SSLContext | Callable[[str], ssl.SSLContext] | None = None
    if use_tls and tls.client_certs_dir is None:
        contexts = mqtt_tls_context(tls.ca_file)  # one for the whole fleet
    elif use_tls:  # each device's own, made now: a certificate that cannot be loaded stops here
        contexts = {d.device_id: tls.context_for(d.device_id) for d in plan.devices}.__getitem__
    mqtt_fleet = MqttFleet(
        plan, host=host, port=port, passwords=passwords, rate_hz=rate_hz, speed=speed, tls=contexts
    )
    return mqtt_fleet.run(duration_s, progress=progress)
