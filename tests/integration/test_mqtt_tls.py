"""MQTT over TLS on the real Mosquitto, as the stack runs it: its TLS listener and private CA;
plaintext to the TLS port, another CA, an expired certificate and another host name all refused;
client certificates when the broker requires them; and a reading published by the simulator over
mqtts:// reaching Kafka through the bridge, itself over mqtts://."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.conftest import TEST_DEVICES, close, connect, wait_until
from tests.integration.conftest import read_topic
from twin_stream.bridge import run_bridge
from twin_stream.bridge.uplink import MqttEndpoint, Uplink
from twin_stream.cli import app
from twin_stream.cli._endpoints import Endpoints
from twin_stream.config import MqttSettings, Settings, StackSettings
from twin_stream.devtools.simulate import FleetOptions, FleetTls, resolve_mqtt, run_live
from twin_stream.devtools.stack import Stack, free_port, mqtt_login_accepted
from twin_stream.devtools.stack.certs import CertificateAuthority, TlsFiles, write_pair
from twin_stream.devtools.stack.harness import ManagedProcess, listens
from twin_stream.domain.topics import kafka_topics, mqtt_wildcard
from twin_stream.errors import MqttError
from twin_stream.mqtt_auth import BRIDGE_USER
from twin_stream.tls import mqtt_tls_context

pytestmark = pytest.mark.services

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class TlsBroker:
    """A running Mosquitto with its plain and TLS listeners, and what clients need for it."""

    stack: Stack
    port: int
    tls_port: int
    ca_file: Path
    passwords: dict[str, str]
    client_certs_dir: Path | None

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def login(self, tls: Any, host: str = "127.0.0.1") -> None:
        """Log in as the bridge (its Uplink) on the TLS port; MqttError if refused."""
        bridge_login(host, self.tls_port, self.passwords[BRIDGE_USER], tls)


def bridge_login(host: str, port: int, password: str, tls: Any) -> None:
    """Log in as the bridge does (its Uplink), then leave; MqttError if refused."""
    endpoint = MqttEndpoint(host, port, BRIDGE_USER, password, "tls-test", tls)
    uplink = Uplink(endpoint, cast(Any, None))
    uplink.start(timeout=10)
    uplink.stop()


def _broker(root: Path, **options: Any) -> Iterator[TlsBroker]:
    stack = Stack(root, services=["mosquitto"], device_ids=TEST_DEVICES, **options)
    state = stack.up(timeout=60)
    info = state.services["mosquitto"]
    certs = info.extra.get("client_certs_dir")
    yield TlsBroker(
        stack,
        info.port,
        info.extra["tls_port"],
        Path(info.extra["ca_file"]),
        {a.username: a.password for a in stack.accounts},
        Path(certs) if certs else None,
    )
    stack.down()


def _own_server_files(folder: Path, hosts: list[str], **validity: dt.datetime) -> TlsFiles:
    """A CA of the test's own and a server certificate it issued (with the validity given)."""
    ca = CertificateAuthority.create("test CA")
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_bytes(ca.pem())
    cert, key = ca.issue(hosts[0], hosts=hosts, **validity)
    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    write_pair(files.cert_file, cert, files.key_file, key)
    return files


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    yield from _broker(tmp_path_factory.mktemp("tls-broker"))


@pytest.fixture(scope="module")
def expired_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    root = tmp_path_factory.mktemp("expired-broker")
    now = dt.datetime.now(dt.UTC)
    files = _own_server_files(
        root / "certs",
        ["127.0.0.1", "localhost"],
        not_before=now - dt.timedelta(days=3),
        not_after=now - dt.timedelta(days=1),
    )
    yield from _broker(root / "stack", mqtt_tls=files)


@pytest.fixture(scope="module")
def misnamed_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    root = tmp_path_factory.mktemp("misnamed-broker")
    files = _own_server_files(root / "certs", ["broker.elsewhere.example"])
    yield from _broker(root / "stack", mqtt_tls=files)


@pytest.fixture(scope="module")
def cert_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    yield from _broker(tmp_path_factory.mktemp("cert-broker"), mqtt_require_certificate=True)


def test_the_stack_runs_a_tls_listener_with_its_own_ca(tls_broker: TlsBroker) -> None:
    assert tls_broker.stack.state is not None
    info = tls_broker.stack.state.services["mosquitto"]
    assert info.extra["tls_url"] == tls_broker.tls_url
    assert tls_broker.tls_port in info.ports and tls_broker.tls_port != tls_broker.port
    assert tls_broker.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    keys = list(Path(info.data_dir).rglob("*.key"))
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert not any(tls_broker.ca_file.parent.glob("*.key"))  # the public folder has no key


def test_the_bridge_logs_in_over_tls_and_verifies_the_broker_by_name_and_address(
    tls_broker: TlsBroker,
) -> None:
    for host in ("localhost", "127.0.0.1"):
        settings = Settings(
            mqtt=MqttSettings(
                url=f"mqtts://{host}:{tls_broker.tls_port}",
                ca_file=tls_broker.ca_file,
                password=SecretStr(tls_broker.passwords[BRIDGE_USER]),
            )
        )
        endpoint = Endpoints(settings).mqtt("tls-test")  # what `twin-stream bridge` connects with
        assert endpoint.tls is not None and endpoint.port == tls_broker.tls_port
        tls_broker.login(endpoint.tls, host=host)


def test_the_simulator_takes_the_stacks_ca_for_the_stacks_own_tls_url(
    tls_broker: TlsBroker,
) -> None:
    stack = StackSettings(dir=tls_broker.stack.root)
    own = Settings(stack=stack, mqtt=MqttSettings(url=tls_broker.tls_url))
    url, passwords, tls = resolve_mqtt(own, None, None)
    assert (url, tls.ca_file) == (tls_broker.tls_url, tls_broker.ca_file)
    assert set(TEST_DEVICES) <= set(passwords)
    # Another broker's URL: the system's CAs (None), never the stack's by mistake.
    elsewhere = "mqtts://broker.example.org:8883"
    assert resolve_mqtt(own, elsewhere, None)[2].ca_file is None


def test_plaintext_to_the_tls_port_is_refused(tls_broker: TlsBroker) -> None:
    with pytest.raises(MqttError, match="connection closed before the login was answered"):
        tls_broker.login(None)
    bridge = tls_broker.passwords[BRIDGE_USER]
    with pytest.raises(TimeoutError, match="no CONNACK"):
        mqtt_login_accepted(tls_broker.tls_port, BRIDGE_USER, bridge)
    # ... while the same login over TLS works.
    assert mqtt_login_accepted(
        tls_broker.tls_port, BRIDGE_USER, bridge, tls=mqtt_tls_context(tls_broker.ca_file)
    )


def test_a_broker_certificate_from_another_ca_is_refused(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.crt"
    other.write_bytes(CertificateAuthority.create("not the broker's CA").pem())
    with pytest.raises(MqttError, match="certificate verify failed"):
        tls_broker.login(mqtt_tls_context(other))
    with pytest.raises(MqttError, match="certificate verify failed"):
        tls_broker.login(mqtt_tls_context(None))  # the system's CAs do not know it either
    # The simulated devices refuse it the same way, and say so.
    passwords = {d: tls_broker.passwords[d] for d in TEST_DEVICES[:2]}
    with pytest.raises(MqttError, match="certificate verify failed"):
        run_live(
            FleetOptions(devices=2, fault_fraction=0.0),
            tls_broker.tls_url,
            passwords,
            FleetTls(other),
            rate_hz=1.0,
            duration_s=1.0,
            speed=1.0,
        )


def test_an_expired_broker_certificate_is_refused(expired_broker: TlsBroker) -> None:
    with pytest.raises(MqttError, match="certificate has expired"):
        expired_broker.login(mqtt_tls_context(expired_broker.ca_file))


def test_a_broker_certificate_for_another_host_name_is_refused(
    misnamed_broker: TlsBroker,
) -> None:
    with pytest.raises(MqttError, match="mismatch"):
        misnamed_broker.login(mqtt_tls_context(misnamed_broker.ca_file))


def test_client_certificates_when_the_broker_requires_them(
    cert_broker: TlsBroker, tmp_path: Path
) -> None:
    assert cert_broker.client_certs_dir is not None
    ca = cert_broker.ca_file
    # No client certificate: refused, whatever the password.
    with pytest.raises(MqttError):
        cert_broker.login(mqtt_tls_context(ca))
    # A client certificate from another CA: refused.
    stranger = CertificateAuthority.create("stranger")
    cert, key = stranger.issue(BRIDGE_USER, client=True)
    write_pair(tmp_path / "c.crt", cert, tmp_path / "c.key", key)
    with pytest.raises(MqttError):
        cert_broker.login(mqtt_tls_context(ca, tmp_path / "c.crt", tmp_path / "c.key"))
    # Its own: accepted.
    own = cert_broker.client_certs_dir / BRIDGE_USER
    cert_broker.login(mqtt_tls_context(ca, own / "client.crt", own / "client.key"))

    # Devices, each with its own certificate, publish over TLS (watched on the plain port).
    watcher, got = connect(cert_broker.port, BRIDGE_USER, cert_broker.passwords[BRIDGE_USER])
    try:
        watcher.subscribe(mqtt_wildcard("telemetry"), qos=1)
        assert wait_until(lambda: got.suback_codes)
        stats = run_live(
            FleetOptions(devices=3, fault_fraction=0.0),
            cert_broker.tls_url,
            {d: cert_broker.passwords[d] for d in TEST_DEVICES[:3]},
            FleetTls(ca, cert_broker.client_certs_dir),
            rate_hz=4.0,
            duration_s=2.0,
            speed=1.0,
        )
        assert stats.published >= 3 and stats.acked == stats.published
        assert wait_until(lambda: len(got.messages) >= stats.published)
    finally:
        close(watcher)
    assert {orjson.loads(m.payload)["device_id"] for m in got.messages} == set(TEST_DEVICES[:3])


def test_a_reading_published_over_tls_reaches_kafka_through_the_bridge_over_tls(
    tls_broker: TlsBroker, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    prefix = f"t{unique}"
    settings = Settings(
        mqtt=MqttSettings(
            url=tls_broker.tls_url,
            ca_file=tls_broker.ca_file,
            password=SecretStr(tls_broker.passwords[BRIDGE_USER]),
        )
    )
    endpoint = Endpoints(settings).mqtt(f"{prefix}-bridge")
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=run_bridge,
        args=(endpoint, kafka_bootstrap),
        kwargs={"stop": stop, "share_group": prefix, "topics": kafka_topics(prefix)}
        | {"on_ready": ready},
    )
    thread.start()
    try:
        assert ready.wait(60), "the bridge did not start"
        # `twin-stream simulate`, as a user runs it, over mqtts:// with the stack's CA.
        credentials = tmp_path / "devices.json"
        credentials.write_text(
            orjson.dumps({d: {"password": tls_broker.passwords[d]} for d in TEST_DEVICES}).decode()
        )
        simulate = subprocess.run(
            [sys.executable, "-m", "twin_stream", "simulate", "--devices", "3", "--rate", "4"]
            + ["--duration", "3", "--fault-fraction", "0", "--mqtt", tls_broker.tls_url]
            + ["--credentials", str(credentials)],
            env={**os.environ, "TWIN_MQTT__CA_FILE": str(tls_broker.ca_file)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = " ".join((simulate.stdout + simulate.stderr).split())  # the console is stderr
        assert simulate.returncode == 0, said
        found = re.search(r"published (\d+) readings, (\d+) acknowledged", said)
        assert found, said
        published, acked = int(found[1]), int(found[2])
        assert published >= 3 and acked == published
        records = read_topic(kafka_bootstrap, kafka_topics(prefix)["telemetry"], published)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    readings = [orjson.loads(r.value) for r in records]  # type: ignore[attr-defined]
    assert len({(r["device_id"], r["seq"]) for r in readings}) == published
    assert {r["device_id"] for r in readings} == set(TEST_DEVICES[:3])


def test_the_compose_broker_config_serves_tls_with_the_files_compose_makes(
    tmp_path: Path,
) -> None:
    """deploy/mosquitto/mosquitto.conf on the real Mosquitto, with what docker compose's
    `mqtt-auth` and `certs` services make (the container paths moved under tmp_path)."""
    runner = CliRunner()
    made = runner.invoke(app, ["mqtt-auth", str(tmp_path / "auth"), "--split", "--devices", "2"])
    assert made.exit_code == 0, made.output
    hosts = ["--host", "mosquitto", "--host", "localhost"]
    made = runner.invoke(app, ["certs", "make", str(tmp_path / "tls"), *hosts])
    assert made.exit_code == 0, made.output
    port = free_port()
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    for inside, here in {
        "/auth/": f"{tmp_path}/auth/broker/",
        "/mosquitto/tls/": f"{tmp_path}/tls/server/",
        "/mosquitto/data/": f"{tmp_path}/data/",
        "listener 8883": f"listener {port} 127.0.0.1",
    }.items():
        assert inside in conf
        conf = conf.replace(inside, here)
    (tmp_path / "data").mkdir()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"user {getpass.getuser()}\n{conf}")  # as root it would switch users
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    assert binary, "install the Debian package mosquitto (make system-deps)"
    broker = ManagedProcess(
        "mosquitto", [binary, "-c", str(config)], tmp_path / "mosquitto.log", ready=listens(port)
    )
    with broker:
        broker.wait_ready(60)
        logins = json.loads((tmp_path / "auth" / "bridge" / "mqtt-credentials.json").read_text())
        password = logins[BRIDGE_USER]["password"]
        ca = tmp_path / "tls" / "public" / "ca.crt"
        bridge_login("localhost", port, password, mqtt_tls_context(ca))
        with pytest.raises(MqttError):
            bridge_login("localhost", port, password, None)  # plaintext
        with pytest.raises(MqttError, match="mismatch"):
            bridge_login("127.0.0.1", port, password, mqtt_tls_context(ca))  # not its name
