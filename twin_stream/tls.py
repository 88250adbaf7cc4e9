"""TLS for MQTT clients (``mqtts://``): the context the bridge, the simulated devices and the
local stack's probes connect with.

:func:`mqtt_tls_context` verifies the broker's certificate against the CA file given (or the
system's) and its host name, and presents a client certificate when the broker wants one. A
broker whose certificate does not verify (another CA, expired, another name) is refused by the
client's handshake: the bridge says so as an MqttError naming OpenSSL's reason.

Standard library only (and our errors): the CLI, the bridge, the simulator and the dev stack
all import it, and it imports none of them (tests/unit/test_layout.py).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from twin_stream.errors import ConfigError

__all__ = ["close_failed_handshakes", "mqtt_tls_context"]


class _ClosingSSLSocket(ssl.SSLSocket):
    """A TLS socket that closes itself when its handshake fails. paho makes the TLS socket and
    runs the handshake in ``connect()``, and drops the socket, open, when the handshake raises
    (a broker that does not verify): one leaked descriptor per attempt, and a device that
    retries every few seconds leaks them all day."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # a non-blocking handshake that goes on later
        except BaseException:
            self.close()
            raise


def close_failed_handshakes(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, whose sockets close themselves when their handshake fails (for paho)."""
    context.sslsocket_class = _ClosingSSLSocket
    return context


def mqtt_tls_context(
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """The TLS context of an MQTT client (``mqtts://``).

    It verifies the broker: its certificate chain against ``ca_file`` (default: the system's
    CAs) and its host name against the one the client dials; TLS 1.2 at least. With
    ``cert_file`` (and ``key_file``, unless the key is in the same file) it presents that client
    certificate, for a broker that requires one. A file that cannot be loaded is a
    :class:`ConfigError` naming it."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as e:  # FileNotFoundError, or not a PEM CA file
        raise ConfigError(f"cannot load the MQTT CA file {ca_file}: {e}") from e
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"cannot load the MQTT client certificate {cert_file} (key {key_file}): {e}"
            ) from e
    elif key_file is not None:
        raise ConfigError("an MQTT client key was given without its certificate")
    return close_failed_handshakes(context)
