"""Mosquitto (Debian ``mosquitto``): the device-facing MQTT broker of the local stack.

Per-device password auth and ACLs are generated from the device list; anonymous clients are
refused. Ready once the bridge account can log in.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.probes import mqtt_login_accepted
from twin_stream.devtools.stack.service import Service
from twin_stream.devtools.stack.state import CREDENTIALS_FILE
from twin_stream.mqtt_auth import BRIDGE_USER, MqttAccount, write_auth_files

__all__ = ["Mosquitto"]


class Mosquitto(Service):
    name = "mosquitto"
    binary = "mosquitto"
    debian_package = "mosquitto"

    def __init__(self, data_dir: Path, accounts: Sequence[MqttAccount]) -> None:
        super().__init__(data_dir)
        self.accounts = list(accounts)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        paths = write_auth_files(self.data_dir, self.accounts)
        passwd, acl = paths["passwd"], paths["acl"]
        (self.data_dir / "persistence").mkdir(exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    # Run as whoever started us; as root, Mosquitto would otherwise switch to
                    # the 'mosquitto' user, which cannot read our 0600 password file.
                    f"user {getpass.getuser()}",
                    "per_listener_settings false",
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {passwd}",
                    f"acl_file {acl}",
                    "persistence true",
                    f"persistence_location {self.data_dir / 'persistence'}/",
                    # QoS 1 backpressure from the bridge holds messages in the broker; allow
                    # a deep queue per client so a slow Kafka delays data instead of dropping it.
                    "max_queued_messages 100000",
                    "max_inflight_messages 100",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    "connection_messages true",
                    "",
                ]
            )
        )
        return [self.executable(), "-c", str(conf)]

    def is_ready(self) -> bool:
        # Log in as the bridge: proves the listener, the password file and auth all work.
        bridge = next(a for a in self.accounts if a.username == BRIDGE_USER)
        return mqtt_login_accepted(self.port, bridge.username, bridge.password)

    def extra(self) -> dict[str, Any]:
        return {"credentials_file": str(self.data_dir / CREDENTIALS_FILE), "host": "127.0.0.1"}
