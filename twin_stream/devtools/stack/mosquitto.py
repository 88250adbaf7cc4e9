"""Mosquitto (Debian ``mosquitto``): the device-facing MQTT broker of the local stack.

Per-device password auth and ACLs are generated from the device list; anonymous clients are
refused. Two listeners on loopback, with the same logins and ACLs: plain MQTT on ``port`` and
MQTT over TLS on ``tls_port``, with a server certificate for ``127.0.0.1`` and ``localhost``
issued by the stack's own private CA (made once under ``DIR/mosquitto/tls``, see
:mod:`~twin_stream.devtools.stack.certs`; clients verify the broker with ``ca_file``). With
``require_certificate``, the TLS listener also wants a client certificate from that CA, and
every account gets one under ``tls/clients/NAME``. Ready once the bridge account can log in on
both listeners.
"""

from __future__ import annotations

import getpass
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.certs import TlsFiles, client_files, server_files
from twin_stream.devtools.stack.probes import free_port, mqtt_login_accepted
from twin_stream.devtools.stack.service import Service
from twin_stream.devtools.stack.state import CREDENTIALS_FILE
from twin_stream.mqtt_auth import BRIDGE_USER, MqttAccount
from twin_stream.mqtt_auth_files import write_auth_files
from twin_stream.tls import close_failed_handshakes

__all__ = ["Mosquitto"]


class Mosquitto(Service):
    name = "mosquitto"
    binary = "mosquitto"
    debian_package = "mosquitto"

    #: The names the server certificate is issued for: clients dial one of them.
    HOSTS = ("127.0.0.1", "localhost")

    def __init__(
        self,
        data_dir: Path,
        accounts: Sequence[MqttAccount],
        *,
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
    ) -> None:
        """``tls``: the server's files to use instead of the stack's own CA (a test gives an
        expired certificate this way); ``require_certificate`` needs the stack's own CA."""
        super().__init__(data_dir)
        if require_certificate and tls is not None:
            raise ValueError("require_certificate issues client certificates from the stack's CA")
        self.accounts = list(accounts)
        self.tls_port = free_port()
        self.given_tls = tls
        self.require_certificate = require_certificate

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    def ports(self) -> list[int]:
        return [self.port, self.tls_port]

    def tls_files(self) -> TlsFiles:
        """The server's certificate, key and CA: given, or issued by the stack's CA."""
        return self.given_tls or server_files(self.tls_dir, self.HOSTS)

    @property
    def ca_file(self) -> Path:
        """The CA file clients verify this broker with."""
        if self.given_tls is not None:
            return self.given_tls.ca_file
        return self.tls_dir / "public" / "ca.crt"

    def command(self) -> list[str]:
        paths = write_auth_files(self.data_dir, self.accounts)
        passwd, acl = paths["passwd"], paths["acl"]
        tls = self.tls_files()
        if self.require_certificate:
            for account in self.accounts:
                client_files(self.tls_dir, account.username)
        (self.data_dir / "persistence").mkdir(exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    # Run as whoever started us; as root, Mosquitto would otherwise switch to
                    # the 'mosquitto' user, which cannot read our 0600 password file.
                    f"user {getpass.getuser()}",
                    # One set of logins and ACLs for both listeners.
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"listener {self.port} 127.0.0.1",
                    # MQTT over TLS (1.2 at least); the server's key stays in the stack's dir.
                    f"listener {self.tls_port} 127.0.0.1",
                    f"cafile {tls.ca_file}",
                    f"certfile {tls.cert_file}",
                    f"keyfile {tls.key_file}",
                    "tls_version tlsv1.2",
                    f"require_certificate {str(self.require_certificate).lower()}",
                    f"password_file {passwd}",
                    f"acl_file {acl}",
                    "persistence true",
                    f"persistence_location {self.data_dir / 'persistence'}/",
                    "autosave_interval 30",  # the queues on disk every 30 s, not only at exit
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

    def _probe_tls(self) -> ssl.SSLContext:
        """The readiness probe's TLS context. It proves that the listener speaks TLS and takes
        logins; it does not judge the certificate (clients do that, with ``ca_file``), so that a
        broker given a bad certificate on purpose still comes up for a test to be refused by."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if self.require_certificate:
            mine = client_files(self.tls_dir, BRIDGE_USER)
            context.load_cert_chain(mine.cert_file, mine.key_file)
        return close_failed_handshakes(context)

    def is_ready(self) -> bool:
        # Log in as the bridge on both listeners: proves the listeners, TLS, the password file
        # and auth all work.
        bridge = next(a for a in self.accounts if a.username == BRIDGE_USER)
        return mqtt_login_accepted(
            self.port, bridge.username, bridge.password
        ) and mqtt_login_accepted(
            self.tls_port, bridge.username, bridge.password, tls=self._probe_tls()
        )

    def extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "credentials_file": str(self.data_dir / CREDENTIALS_FILE),
            "host": "127.0.0.1",
            "tls_url": self.tls_url,
            "tls_port": self.tls_port,
            "ca_file": str(self.ca_file),
        }
        if self.require_certificate:
            extra["client_certs_dir"] = str(self.tls_dir / "clients")
        return extra
