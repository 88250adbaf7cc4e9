"""Bad input at load through the real bridge (``twin-stream bridge``, a process) on the real
Mosquitto and Kafka: the fuzzer's malformed, oversized, wrongly typed, NaN/infinite, future- or
past-stamped and wrong-topic payloads, a valid reading after each (twin_stream/devtools/fuzz/,
the code ``twin-stream fuzz`` runs with 10,000). Each bad payload is dead-lettered by the bridge
with a reason ending in its rule, or refused by the broker and nowhere on Kafka; every valid
reading arrives once, in order, as the bridge forwards it; the bridge never crashes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twin_stream.bridge.routing import MAX_LETTER_PAYLOAD_BYTES
from twin_stream.devtools.fuzz import (
    CATEGORIES,
    REFUSED,
    Broker,
    Device,
    FuzzReport,
    Probe,
    fleet,
    probes,
    run_fuzz,
    watched,
)
from twin_stream.devtools.stack.mosquitto import Mosquitto
from twin_stream.domain.messages import MAX_PAYLOAD_BYTES
from twin_stream.domain.topics import kafka_topics
from twin_stream.mqtt_auth import BRIDGE_USER, MqttAccount, generate_accounts

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
COUNT = 1_000
SEED = 3  # fixed: the same payloads on every run (hypothesis, seeded)


def _bridge_env(port: int, password: str, bootstrap: str, group: str) -> dict[str, str]:
    return {
        "TWIN_MQTT__URL": f"mqtt://127.0.0.1:{port}",
        "TWIN_MQTT__USERNAME": BRIDGE_USER,
        "TWIN_MQTT__PASSWORD": password,
        "TWIN_KAFKA__BOOTSTRAP": bootstrap,
        "TWIN_BRIDGE__SHARE_GROUP": group,
        "TWIN_BRIDGE__CLIENT_ID": f"{group}-bridge",
    }


def _fuzz(
    port: int,
    accounts: dict[str, str],
    bootstrap: str,
    prefix: str,
    sent: list[Probe],
    devices: list[Device],
    log: Path,
) -> FuzzReport:
    """``sent`` through a ``twin-stream bridge`` process; its crashes fail the test."""
    env = _bridge_env(port, accounts[BRIDGE_USER], bootstrap, prefix)
    # Its own client id: a bridge session another test left on the shared broker (the default
    # id) would hand this one its queued messages first.
    args = ["bridge", "--topic-prefix", prefix, "--client-id", f"{prefix}-bridge"]
    with watched("bridge", args, env, log) as bridge:
        report = run_fuzz(
            Broker("127.0.0.1", port, accounts),
            bootstrap,
            kafka_topics(prefix),
            sent,
            devices,
            rate=1000,
            seed=SEED,
            services=[bridge],
            drain_timeout_s=60,
        )
    assert bridge.crashes() == [], log.read_text()[-3000:]
    return report


def test_every_bad_payload_is_dead_lettered_or_refused_and_every_valid_reading_arrives(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    devices = fleet(5)
    sent = probes(devices, datetime.now(UTC), COUNT, seed=SEED)
    # Every category, and past each limit: the bridge's, and Kafka's default record size
    # (1 MB) for a letter that would keep the whole payload.
    assert {p.category for p in sent} == set(CATEGORIES)
    sizes = [len(p.payload) for p in sent if p.category == "oversized"]
    assert MAX_PAYLOAD_BYTES < min(sizes) <= MAX_LETTER_PAYLOAD_BYTES < 1_000_000 < max(sizes)
    # A broker of its own: the session's broker holds the persistent sessions of every bridge
    # other tests ran (each queuing a copy of every message); at this test's 1,000 msgs/s that
    # backlog made its readings miss the drain in a full run, though never alone.
    made = generate_accounts(d.device_id for d in devices)
    accounts = {a.username: a.password for a in made}
    prefix = f"t{unique}"
    with _own_broker(tmp_path / "mosquitto", made, Mosquitto) as broker:
        report = _fuzz(
            broker.port, accounts, kafka_bootstrap, prefix, sent, devices, tmp_path / "b.log"
        )

    assert report.broker_max_packet_size is None  # the stack's Mosquitto sets none
    for category, row in report.categories.items():
        owed = "refused" if category in REFUSED else "dead_lettered"
        assert row["sent"] > 0 and row[owed] == row["sent"], (category, row, report.problems)
        assert row["lost"] == row["leaked"] == row["wrong_rule"] == 0, (category, row)
    assert report.valid == {
        "sent": COUNT,
        "arrived": COUNT,
        "missing": 0,
        "duplicates": 0,
        "altered": 0,
        "out_of_order": 0,
        "not_acked": 0,
    }, report.problems
    assert report.unexpected_letters == 0 and report.problems == {}
    assert report.messages_per_s > 500  # at load: the pace asked for, or near it


class _LimitedMosquitto(Mosquitto):
    """The stack's Mosquitto with the packet limit compose's broker has."""

    limit = int(
        re.findall(
            r"^max_packet_size (\d+)$",
            (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(),
            re.MULTILINE,
        )[0]
    )

    def command(self) -> list[str]:
        argv = super().command()
        with open(self.data_dir / "mosquitto.conf", "a") as conf:
            conf.write(f"max_packet_size {self.limit}\n")
        return argv


@contextmanager
def _own_broker(
    root: Path, accounts: list[MqttAccount], kind: type[Mosquitto] = Mosquitto
) -> Iterator[Mosquitto]:
    broker = kind(root, accounts)
    broker.start(tie_to_parent=True)
    try:
        broker.wait_ready(time.monotonic() + 60)
        yield broker
    finally:
        assert broker.process is not None
        broker.process.stop(grace_s=10)


def test_a_broker_with_a_packet_limit_refuses_what_is_over_it_and_the_bridge_the_rest(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """With compose's ``max_packet_size``, a payload over it never reaches the bridge: the
    broker drops the connection that sent it. One under it but over the bridge's 16 KiB is
    dead-lettered. The device's other messages are not held up by either."""
    devices = fleet(3)
    sent = probes(devices, datetime.now(UTC), 80, SEED, ("oversized",))
    limit = _LimitedMosquitto.limit
    over = [p for p in sent if len(p.payload) > limit]
    assert over and len(over) < len(sent)  # both sides of the limit
    accounts = generate_accounts(d.device_id for d in devices)
    with _own_broker(tmp_path / "mosquitto", accounts, _LimitedMosquitto) as broker:
        report = _fuzz(
            broker.port,
            {a.username: a.password for a in accounts},
            kafka_bootstrap,
            f"t{unique}",
            sent,
            devices,
            tmp_path / "bridge.log",
        )
    assert report.broker_max_packet_size == limit
    row = report.categories["oversized"]
    assert row["sent"] == len(sent)
    assert row["refused"] >= len(over), (row, report.problems)  # (and any a header short)
    assert row["refused"] + row["dead_lettered"] == len(sent), (row, report.problems)
    assert row["lost"] == row["leaked"] == row["wrong_rule"] == 0
    assert report.valid["arrived"] == report.valid["sent"] == len(sent), report.valid
