"""Settings, read once from the environment at the CLI edge and passed down as plain values.

This is the only module that reads the environment. Every variable has the prefix ``TWIN_``;
nested groups use ``__`` (``TWIN_STACK__DIR``). Secrets are :class:`~pydantic.SecretStr` and come
from the environment (or a ``.env`` file), never from a command-line argument, which would show
in ``ps`` and in shell history.

>>> Settings().stack.dir.name
'stack'
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin_stream.domain.retention import (
    DEFAULT_DAYS,
    DEFAULT_RAW_DAYS,
    DEFAULT_SUMMARIES_DAYS,
    Retention,
    RetentionTooShort,
    check,
)
from twin_stream.errors import ConfigError

__all__ = [
    "ApiSettings",
    "BridgeSettings",
    "DevicesSettings",
    "GrafanaSettings",
    "InfluxSettings",
    "KafkaSettings",
    "MqttSettings",
    "PrivacySettings",
    "Settings",
    "SinkSettings",
    "StackSettings",
    "StateSettings",
    "WorkerSettings",
    "load_settings",
    "parse_mqtt_url",
]


class StackSettings(BaseModel):
    """Where the local stack keeps its data and finds the Kafka jars."""

    model_config = ConfigDict(frozen=True)

    dir: Path = Path(".twin-stream/stack")
    kafka_libs: Path | None = None  # default: .cache/kafka/libs found from the working dir
    influxd: Path | None = None  # default: .cache/influxdb/bin/influxd (built by make influxd)


class MqttSettings(BaseModel):
    """The MQTT broker devices talk to, and how the platform logs in to it."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None  # mqtt://host:1883 or mqtts://host:8883; default: the local stack's
    username: str = "bridge"
    password: SecretStr | None = None  # default: from the local stack's credentials file
    ca_file: Path | None = None  # CA bundle for mqtts:// (default: the system's)
    #: The bridge's client certificate and key, for a broker that requires one (mqtts://).
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Simulated devices' client certificates: DIR/<device_id>/client.crt and client.key.
    client_certs_dir: Path | None = None
    #: Per-device passwords for simulated devices (JSON: {device_id: {"password": ...}}).
    credentials_file: Path | None = None


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of an MQTT URL.

    >>> parse_mqtt_url("mqtts://broker.example.org")
    ('broker.example.org', 8883, True)
    >>> parse_mqtt_url("mqtt://127.0.0.1:1884")
    ('127.0.0.1', 1884, False)
    >>> parse_mqtt_url("tcp://broker:1883")
    Traceback (most recent call last):
    ...
    twin_stream.errors.ConfigError: not an MQTT URL (mqtt://host:port or mqtts://host:port): 'tcp://broker:1883'
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"not an MQTT URL (mqtt://host:port or mqtts://host:port): {url!r}")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


class KafkaSettings(BaseModel):
    """Kafka bootstrap and client security (in each client's terms:
    :mod:`twin_stream.kafka_security`), and the topics' partitions and replication."""

    model_config = ConfigDict(frozen=True)

    bootstrap: str | None = None  # host:port[,host:port]; default: the local stack's
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    partitions: int = 6
    #: Copies of each topic (ours, Faust's changelogs and internal topics) and how many must
    #: hold a write before it is acknowledged: 1 and 1 on the local stack, 3 and 2 in
    #: production (one broker can fail with no acknowledged write lost).
    replication_factor: int = 1
    min_insync_replicas: int = 1


class BridgeSettings(BaseModel):
    """MQTT -> Kafka bridge tuning."""

    model_config = ConfigDict(frozen=True)

    #: Several bridges with the same group split the devices' messages (MQTT shared
    #: subscription, ``shared``); one bridge subscribes plainly (default), which Mosquitto 2.0.11
    #: restores after a restart of the broker, as it does not restore shared subscriptions
    #: (messages sent meanwhile would be acknowledged to devices and delivered to nobody).
    share_group: str = "twin-bridge"
    shared: bool = False
    client_id: str = "twin-bridge-1"
    #: Messages received but not yet acknowledged to MQTT; the broker holds the rest back.
    max_unacked: int = 1000


class WorkerSettings(BaseModel):
    """A Faust worker: its twin API, its table store and how often it checkpoints models."""

    model_config = ConfigDict(frozen=True)

    web_host: str = "127.0.0.1"  # how other workers reach this one's API ("hostname": this host's)
    web_port: int = 6066
    data_dir: Path | None = None  # default: .twin-stream/worker-PORT
    checkpoint_every: int = 200  # save a device's models every K of its events...
    checkpoint_interval_s: float = 30.0  # ...or every T seconds
    #: After a rebalance, telemetry is read again from the devices' last checkpoints, at most
    #: this many records before a partition's committed offset (twin_stream.worker.replay).
    replay_max_records: int = Field(default=200_000, ge=0)
    batch_max: int = 500  # telemetry micro-batches: at most this many events...
    batch_within_s: float = 0.01  # ...gathered for at most this long (latency it may add)
    uvloop: bool = True  # run the event loop on uvloop
    gc_freeze: bool = True  # gc.freeze() the start-up heap once the worker runs
    #: Alerts people have not acknowledged: a critical one pages again every this many minutes
    #: (0: never); an alert may be shelved for at most this long; the worker's clock looks for
    #: re-notifications due and shelves that ended every this many seconds.
    alert_renotify_min: Annotated[float, Field(ge=0)] = 15.0
    alert_max_shelve_min: Annotated[float, Field(gt=0)] = 480.0
    alert_check_s: Annotated[float, Field(gt=0)] = 10.0
    #: Static group membership: this worker's stable id in the group (default
    #: ``twin-worker-HOST-PORT``); restarted within the session timeout, it takes its partitions
    #: back without a rebalance. Heartbeats every ``heartbeat_interval_s`` (under a third of it).
    instance_id: str | None = None
    session_timeout_s: Annotated[float, Field(ge=6)] = 15.0
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 1.0


class ApiSettings(BaseModel):
    """Who may use the twin API: bearer tokens, stored as salted hashes (``twin-stream tokens``).

    The workers read ``tokens`` (the tokens file's JSON, hashes only: for compose) when it is
    set, else ``tokens_file``, which they re-read when it changes (a revoked token is refused
    from the next request on)."""

    model_config = ConfigDict(frozen=True)

    tokens_file: Path = Path(".twin-stream/api-tokens.json")
    tokens: str | None = None  # the same JSON as the file (hashes, never tokens)
    #: Where the CLI's API commands (``failures add``, ``rebaseline``) reach a worker, and the
    #: bearer token they send (an operator's; from the environment only, never an argument).
    url: str = "http://127.0.0.1:6066"
    token: SecretStr | None = None


class DevicesSettings(BaseModel):
    """Where ``twin-stream devices`` keeps real devices' MQTT accounts: Mosquitto's password
    file and ACL file, and the registry of devices (id, type, added). Default: the files of the
    local stack's Mosquitto while ``twin-stream stack up`` runs."""

    model_config = ConfigDict(frozen=True)

    password_file: Path | None = None
    acl_file: Path | None = None
    registry_file: Path | None = None


class GrafanaSettings(BaseModel):
    """The Grafana that ``twin-stream grafana push`` provisions over its HTTP API."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None  # e.g. http://localhost:3000
    token: SecretStr | None = None  # a service account token (Editor, or Admin for alerting)
    #: Where Grafana's contact point posts alerts (a webhook URL often embeds a secret).
    alert_webhook_url: SecretStr | None = None
    #: The InfluxDB URL as Grafana reaches it (default: TWIN_INFLUX__URL).
    influx_url: str | None = None


class InfluxSettings(BaseModel):
    """The time-series store: anything serving the InfluxDB v2 write API (/api/v2/write)."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None  # default: the local stack's InfluxDB
    token: SecretStr = SecretStr("")
    org: str = "twin"
    bucket: str = "twin"


class PrivacySettings(BaseModel):
    """How identifiers are kept out of dead letters and logs (docs/security.md).

    The redaction key makes each identifier a keyed hash (HMAC-SHA256), the same in every
    process that has the key: set it (at least 16 characters, e.g. ``openssl rand -hex 32``)
    wherever the platform runs for real; compose will not start without it. Without it (dev,
    tests) each process makes its own and says so in its log."""

    model_config = ConfigDict(frozen=True)

    redaction_key: Annotated[SecretStr | None, Field(min_length=16)] = None


class StateSettings(BaseModel):
    """How the worker's saved per-device state is protected (docs/security.md).

    The signing key signs each device's model state (HMAC-SHA256) in the worker's ``models``
    changelog; state whose signature fails is never unpickled. Every worker of a deployment
    needs the same key (at least 16 characters, e.g. ``openssl rand -hex 32``); compose will
    not start without it. Without it (dev, tests) each process makes its own and says so in
    its log: its checkpoints then do not load in another process, nor after a restart (the
    models are learned afresh, the alert state is kept)."""

    model_config = ConfigDict(frozen=True)

    signing_key: Annotated[SecretStr | None, Field(min_length=16)] = None


class RetentionSettings(BaseModel):
    """Days each store keeps what it holds (``-1``: for ever), by Kafka topic kind, and the
    time-series store's raw points and hourly summaries: see
    :mod:`twin_stream.domain.retention` for the floors and docs/security.md for the reasons.
    A value below its floor (the audit trail: for ever, or six years at least) is refused."""

    model_config = ConfigDict(frozen=True)

    telemetry_days: int = DEFAULT_DAYS["telemetry"]
    status_days: int = DEFAULT_DAYS["status"]
    reported_days: int = DEFAULT_DAYS["reported"]
    ack_days: int = DEFAULT_DAYS["ack"]
    scores_days: int = DEFAULT_DAYS["scores"]
    predictions_days: int = DEFAULT_DAYS["predictions"]
    twins_days: int = DEFAULT_DAYS["twins"]
    commands_days: int = DEFAULT_DAYS["commands"]
    desired_days: int = DEFAULT_DAYS["desired"]
    alerts_days: int = DEFAULT_DAYS["alerts"]
    alert_actions_days: int = DEFAULT_DAYS["alert_actions"]
    lifecycle_days: int = DEFAULT_DAYS["lifecycle"]
    dlq_days: int = DEFAULT_DAYS["dlq"]
    audit_days: int = DEFAULT_DAYS["audit"]
    raw_days: int = DEFAULT_RAW_DAYS
    summaries_days: int = DEFAULT_SUMMARIES_DAYS

    @field_validator("*")
    @classmethod
    def _within_floor(cls, days: int, info: ValidationInfo) -> int:
        assert info.field_name is not None
        try:
            return check(info.field_name.removesuffix("_days"), days)
        except RetentionTooShort as e:  # pydantic names the variable with this reason
            raise ValueError(str(e)) from e

    def retention(self) -> Retention:
        return Retention(
            topics={kind: getattr(self, f"{kind}_days") for kind in DEFAULT_DAYS},
            raw_days=self.raw_days,
            summaries_days=self.summaries_days,
        )


class SinkSettings(BaseModel):
    """Sink tuning: points per write and the longest wait before a partial batch goes out."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = 5000
    flush_interval_s: float = 1.0
    group_id: str = "twin-sink"
    #: Static group membership: a stable id (default ``{group_id}-HOST``), so a restarted sink
    #: takes its partitions back at once instead of after the session timeout.
    instance_id: str | None = None
    session_timeout_s: Annotated[float, Field(ge=6)] = 15.0


class Settings(BaseSettings):
    """All of twin-stream's settings."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", env_nested_delimiter="__", frozen=True)

    #: ``production`` wherever the platform runs for real (compose sets it): a service then
    #: stops, with one line naming the variable, when a key it must share with the other
    #: processes is missing (the redaction key), instead of making one of its own.
    deployment: Literal["development", "production"] = "development"
    stack: StackSettings = StackSettings()
    mqtt: MqttSettings = MqttSettings()
    kafka: KafkaSettings = KafkaSettings()
    bridge: BridgeSettings = BridgeSettings()
    influx: InfluxSettings = InfluxSettings()
    sink: SinkSettings = SinkSettings()
    worker: WorkerSettings = WorkerSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    api: ApiSettings = ApiSettings()
    devices: DevicesSettings = DevicesSettings()
    privacy: PrivacySettings = PrivacySettings()
    state: StateSettings = StateSettings()
    retention: RetentionSettings = RetentionSettings()

    @property
    def production(self) -> bool:
        return self.deployment == "production"

    def grafana_variables(self) -> dict[str, str]:
        """The ``$TWIN_...`` placeholders of the Grafana provisioning files, filled from these
        settings for ``grafana push`` (Grafana itself fills them from its own environment).
        A setting that is not set is left out, so the push names it as missing."""
        values = {
            "TWIN_INFLUX__URL": self.grafana.influx_url or self.influx.url or None,
            "TWIN_INFLUX__BUCKET": self.influx.bucket,
            "TWIN_INFLUX__TOKEN": self.influx.token.get_secret_value(),
            "TWIN_GRAFANA__ALERT_WEBHOOK_URL": (
                self.grafana.alert_webhook_url.get_secret_value()
                if self.grafana.alert_webhook_url
                else None
            ),
        }
        return {name: value for name, value in values.items() if value is not None}


def load_settings() -> Settings:
    """Read the settings from the environment once; a bad value is a :class:`ConfigError`
    naming the ``TWIN_*`` variable and the rule it breaks."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            "TWIN_" + "__".join(str(part) for part in error["loc"]).upper() + ": " + error["msg"]
            for error in e.errors()
        )
        raise ConfigError(problems) from e
