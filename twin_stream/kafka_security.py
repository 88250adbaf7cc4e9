"""The Kafka security settings (``TWIN_KAFKA__SECURITY_PROTOCOL``, the SASL mechanism, user and
password, the TLS CA file: :class:`~twin_stream.config.KafkaSettings`) in each client's terms,
here and nowhere else:

* kafka-python's keyword arguments (topic creation, the bridge's downlink, the sink, the CLI's
  readers): :func:`kafka_python_options`;
* librdkafka's options (confluent-kafka: the bridge's uplink producer):
  :func:`librdkafka_options`, the same settings under librdkafka's names
  (:func:`in_librdkafka_names`);
* Faust's broker credentials (the worker): :func:`faust_credentials`. The worker's own aiokafka
  clients (its login check, ``GET /audit``, the fleet's models) take theirs from these
  credentials with Faust's ``credentials_to_aiokafka_auth``, so that they log in as Faust does.

Faust is imported only where its credentials are made: the bridge and the sink use this module
without it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from twin_stream.config import KafkaSettings
from twin_stream.errors import ConfigError

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = [
    "SASL_MECHANISMS",
    "faust_credentials",
    "in_librdkafka_names",
    "kafka_python_options",
    "librdkafka_options",
]

#: The SASL mechanisms Faust's Kafka client (aiokafka) and our other clients all speak.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: kafka-python's names of the security options (:func:`kafka_python_options`) in librdkafka's.
_LIBRDKAFKA_NAMES: Final[Mapping[str, str]] = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
}


def kafka_python_options(kafka: KafkaSettings) -> dict[str, object]:
    """Keyword arguments for kafka-python clients (producer, consumer, admin)."""
    options: dict[str, object] = {"security_protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if kafka.ssl_cafile:
        options["ssl_cafile"] = str(kafka.ssl_cafile)
    return options


def librdkafka_options(kafka: KafkaSettings) -> dict[str, object]:
    """The same settings in librdkafka's names, for confluent-kafka (the bridge's producer).

    >>> librdkafka_options(KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN"))
    {'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'PLAIN'}
    """
    return in_librdkafka_names(kafka_python_options(kafka))


def in_librdkafka_names(kafka_python_options: Mapping[str, object]) -> dict[str, object]:
    """kafka-python client options in librdkafka's names, for a caller that has only the former
    (``run_bridge(kafka_options=...)``). Only the security options have an equivalent; any other
    is a :class:`ConfigError` (pass librdkafka's own options instead). An option set to None is
    left out (librdkafka's default)."""
    unknown = sorted(set(kafka_python_options) - set(_LIBRDKAFKA_NAMES))
    if unknown:
        raise ConfigError(
            f"kafka-python options with no librdkafka equivalent here: {', '.join(unknown)} "
            "(give the bridge's producer librdkafka's own options)"
        )
    return {
        _LIBRDKAFKA_NAMES[name]: value
        for name, value in kafka_python_options.items()
        if value is not None
    }


def faust_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """Faust's broker credentials for the Kafka security settings the bridge and the sink use
    (:func:`kafka_python_options`): None for PLAINTEXT, TLS with ``ssl_cafile`` (default: the
    system's CAs) for SSL, SASL (PLAIN or SCRAM) for SASL_PLAINTEXT and SASL_SSL. Settings that
    cannot work are a :class:`ConfigError` naming the variable."""
    import faust  # the worker's library: only the worker makes its credentials

    protocol = kafka.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol not in ("SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(
            f"TWIN_KAFKA__SECURITY_PROTOCOL: {kafka.security_protocol!r} is not one of "
            "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
        )
    context: ssl.SSLContext | None = None
    if protocol in ("SSL", "SASL_SSL"):
        cafile = str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"TWIN_KAFKA__SSL_CAFILE: cannot load {cafile}: {e}") from e
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = (kafka.sasl_mechanism or "").upper()
    if mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"TWIN_KAFKA__SASL_MECHANISM: {kafka.sasl_mechanism!r} is not one of "
            f"{', '.join(SASL_MECHANISMS)} (needed for {protocol})"
        )
    if not kafka.sasl_username or kafka.sasl_password is None:
        raise ConfigError(
            f"set TWIN_KAFKA__SASL_USERNAME and TWIN_KAFKA__SASL_PASSWORD for {protocol}"
        )
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        mechanism=mechanism,
        ssl_context=context,
    )
