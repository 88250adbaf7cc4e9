"""The worker's Kafka credentials (twin_stream/kafka_security.py faust_credentials): the same
TWIN_KAFKA__* security settings as the bridge and the sink, as Faust's broker credentials."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from twin_stream.config import KafkaSettings
from twin_stream.errors import ConfigError
from twin_stream.kafka_security import faust_credentials
from twin_stream.worker.app import WorkerConfig, create_app


def sasl(**changes: object) -> KafkaSettings:
    base = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="twin",
        sasl_password=SecretStr("s3cret"),
    )
    return base.model_copy(update=changes)


def test_each_security_protocol_becomes_faust_credentials() -> None:
    assert faust_credentials(KafkaSettings()) is None  # PLAINTEXT
    plain = faust_credentials(sasl())
    assert isinstance(plain, faust.SASLCredentials)
    assert (plain.username, plain.password, plain.mechanism.value) == (
        "twin",
        "s3cret",
        "SCRAM-SHA-512",
    )
    assert plain.ssl_context is None and plain.protocol.value == "SASL_PLAINTEXT"
    over_tls = faust_credentials(sasl(security_protocol="SASL_SSL", sasl_mechanism="plain"))
    assert isinstance(over_tls, faust.SASLCredentials)
    assert over_tls.protocol.value == "SASL_SSL" and over_tls.mechanism.value == "PLAIN"
    assert isinstance(over_tls.ssl_context, ssl.SSLContext)
    assert over_tls.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert over_tls.ssl_context.check_hostname
    tls = faust_credentials(KafkaSettings(security_protocol="SSL"))
    assert isinstance(tls, faust.SSLCredentials) and tls.protocol.value == "SSL"
    assert "s3cret" not in repr(plain)  # Faust's repr names the user only


@pytest.mark.parametrize(
    "changes,names",
    [
        ({"security_protocol": "SASL_TLS"}, "TWIN_KAFKA__SECURITY_PROTOCOL"),
        ({"sasl_mechanism": None}, "TWIN_KAFKA__SASL_MECHANISM"),
        ({"sasl_mechanism": "GSSAPI"}, "TWIN_KAFKA__SASL_MECHANISM"),
        ({"sasl_password": None}, "TWIN_KAFKA__SASL_PASSWORD"),
        ({"sasl_username": None}, "TWIN_KAFKA__SASL_USERNAME"),
        (
            {"security_protocol": "SASL_SSL", "ssl_cafile": Path("/no/such/ca.pem")},
            "TWIN_KAFKA__SSL_CAFILE",
        ),
    ],
)
def test_settings_that_cannot_work_name_the_variable(
    changes: dict[str, object], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        faust_credentials(sasl(**changes))


def test_the_app_logs_in_with_them(tmp_path: Path) -> None:
    credentials = faust_credentials(sasl())
    app = create_app(
        WorkerConfig(
            bootstrap="127.0.0.1:9",
            data_dir=tmp_path,
            web_port=6066,
            store="memory://",
            broker_credentials=credentials,
        )
    )
    assert app.conf.broker_credentials is credentials
