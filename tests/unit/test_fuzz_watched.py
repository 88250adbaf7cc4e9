"""The fuzzer's crash check: every traceback in a service's log is a crash, but for
kafka-python 3.0's race at a consumer's close, which is counted apart (and still reported)."""

from __future__ import annotations

from pathlib import Path

from twin_stream.devtools.fuzz.processes import Watched
from twin_stream.devtools.stack.harness import ManagedProcess

RACE = """\
17:40:01 ERROR kafka.net.transport: <KafkaTCPTransport 9092>: Error receiving network data
Traceback (most recent call last):
  File "/x/.venv/lib/python3.11/site-packages/kafka/net/transport.py", line 110, in _sock_recv
    data = self._sock.recv(4096)
           ^^^^^^^^^^^^^^^
AttributeError: 'NoneType' object has no attribute 'recv'
"""
OURS = """\
2026-12-07 17:40:00,001 ERROR twin_stream.bridge.uplink: producing failed
Traceback (most recent call last):
  File "/x/twin_stream/bridge/uplink.py", line 300, in step
    self._advance()
AttributeError: 'NoneType' object has no attribute 'recv'
"""


def watched(tmp_path: Path, text: str) -> Watched:
    log = tmp_path / "b.log"
    log.write_text("bridge: mqtt 127.0.0.1:1883 <-> kafka 127.0.0.1:9092\n" + text)
    return Watched(ManagedProcess("bridge", ["true"], log))


def test_kafka_pythons_close_race_is_counted_apart_not_as_a_crash(tmp_path: Path) -> None:
    service = watched(tmp_path, RACE + "bridge stopped: 10 received, 10 forwarded\n")
    assert service.tracebacks() == 0
    assert service.library_close_races() == 1
    assert service.summary()["library_close_races"] == 1
    assert service.crashes() == []


def test_any_other_traceback_is_a_crash_even_with_the_same_error(tmp_path: Path) -> None:
    service = watched(tmp_path, OURS + RACE)
    assert service.tracebacks() == 1
    assert service.library_close_races() == 1
    (crash,) = service.crashes()
    assert crash.startswith("bridge logged 1 traceback(s) in ")


def test_the_race_from_another_logger_or_file_is_a_crash(tmp_path: Path) -> None:
    elsewhere = RACE.replace("kafka/net/transport.py", "twin_stream/kafka.py")
    assert watched(tmp_path, elsewhere).tracebacks() == 1
    other_line = RACE.replace("Error receiving network data", "something else")
    assert watched(tmp_path, other_line).tracebacks() == 1
