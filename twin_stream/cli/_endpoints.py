"""Where a production command finds its services: its ``TWIN_*`` settings, or, only when
``twin-stream stack up`` is running, the local dev stack, and then it says so on start.

Without either, the command stops with a :class:`ConfigError` that names the settings to set.
"""

from __future__ import annotations

import json
from pathlib import Path

from twin_stream.bridge.uplink import MqttEndpoint
from twin_stream.cli._common import console
from twin_stream.config import Settings, parse_mqtt_url
from twin_stream.devtools import stack as local_stack
from twin_stream.errors import ConfigError, TwinStreamError
from twin_stream.tls import mqtt_tls_context

__all__ = ["Endpoints"]


class Endpoints:
    """Resolves each endpoint once, from the settings first and the running dev stack second."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack: local_stack.StackState | None = None

    def _dev_stack(self, service: str, setting: str) -> local_stack.StackState:
        root = self.settings.stack.dir
        if self._stack is None:
            try:
                state = local_stack.Stack.load(root)
            except TwinStreamError:
                raise ConfigError(
                    f"{setting} is not set; set it, or start the dev stack with "
                    f"`twin-stream stack up` (none is running under {root})"
                ) from None
            down = [n for n, row in local_stack.status(state).items() if not row["running"]]
            if down:
                raise ConfigError(
                    f"{setting} is not set, and the dev stack under {root} is not running "
                    f"({', '.join(down)} down); set it, or run `twin-stream stack up`"
                )
            self._stack = state
        if service not in self._stack.services:
            raise ConfigError(
                f"{setting} is not set, and the dev stack under {root} has no {service}"
            )
        console.print(
            f"[yellow]dev stack:[/] {setting} is not set, so {service} is the one "
            f"`twin-stream stack up` runs at {self._stack.url(service)}"
        )
        return self._stack

    def kafka_bootstrap(self) -> str:
        return self.settings.kafka.bootstrap or self._dev_stack(
            "kafka", "TWIN_KAFKA__BOOTSTRAP"
        ).url("kafka")

    def influx_url(self) -> str:
        return self.settings.influx.url or self._dev_stack("influxdb", "TWIN_INFLUX__URL").url(
            "influxdb"
        )

    def mqtt(self, client_id: str) -> MqttEndpoint:
        """The bridge's MQTT login: URL, then password or the credentials file it names."""
        mqtt = self.settings.mqtt
        url = mqtt.url or self._dev_stack("mosquitto", "TWIN_MQTT__URL").url("mosquitto")
        host, port, tls = parse_mqtt_url(url)
        if mqtt.password is not None:
            password = mqtt.password.get_secret_value()
        else:
            credentials = mqtt.credentials_file or Path(
                self._dev_stack("mosquitto", "TWIN_MQTT__PASSWORD")
                .services["mosquitto"]
                .extra["credentials_file"]
            )
            password = _password_from(credentials, mqtt.username)
        context = mqtt_tls_context(mqtt.ca_file, mqtt.cert_file, mqtt.key_file) if tls else None
        return MqttEndpoint(host, port, mqtt.username, password, client_id, context)


def _password_from(credentials: Path, username: str) -> str:
    try:
        accounts = json.loads(credentials.read_text())
        return str(accounts[username]["password"])
    except OSError as e:
        raise ConfigError(f"cannot read MQTT credentials {credentials}: {e}") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{credentials} holds no password for MQTT user {username!r}") from e
