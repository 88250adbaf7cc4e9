"""The process harness every tool and test starts its processes with: ready by a URL or a port,
a crash told with the end of its log, stopped, killed and started again."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from twin_stream.devtools.stack import free_port
from twin_stream.devtools.stack.harness import (
    ManagedProcess,
    all_of,
    answers,
    listens,
    stop_all,
)
from twin_stream.errors import ServiceError, ServiceExited, ServiceNotReady


def sh(script: str, log: Path, **kwargs: object) -> ManagedProcess:
    return ManagedProcess("sh", ["sh", "-c", script], log, **kwargs)  # type: ignore[arg-type]


def said(text: str, log: Path) -> bool:
    return text in log.read_text() if log.exists() else False


def test_ready_by_port_and_by_url_then_stopped(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = ManagedProcess(
        "http",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        tmp_path / "http.log",
        cwd=tmp_path,
        ready=all_of(listens(port), answers(url)),
    ).start()
    try:
        server.wait_ready(60)
        assert server.alive() and server.exit_code is None
    finally:
        code = server.stop(30)
    assert code == -signal.SIGTERM and not server.alive()
    assert not listens(port)()


def test_a_process_that_exits_while_waited_on_shows_its_log_tail(tmp_path: Path) -> None:
    process = sh("echo 'bind: Address already in use' >&2; exit 3", tmp_path / "a.log")
    process.start()
    with pytest.raises(ServiceNotReady, match="exited with code 3") as raised:
        process.wait_ready(60, until=lambda: False)
    assert raised.value.log_tail == "bind: Address already in use"


def test_not_ready_in_time_names_the_last_probe_and_a_kill_ends_it(tmp_path: Path) -> None:
    process = sh(
        "exec sleep 60", tmp_path / "b.log", ready=answers(f"http://127.0.0.1:{free_port()}")
    )
    process.start()
    try:
        with pytest.raises(ServiceNotReady, match=r"not ready in time \(last probe: URLError"):
            process.wait_ready(0.5)
    finally:
        assert process.kill() == -signal.SIGKILL


def test_a_crash_is_told_with_its_exit_code_and_the_end_of_its_log(tmp_path: Path) -> None:
    process = sh("echo 'worker: out of luck'; exit 2", tmp_path / "c.log").start()
    assert process.wait(60) == 2
    with pytest.raises(ServiceExited, match="exited with code 2") as raised:
        process.check()
    assert (raised.value.exit_code, raised.value.log_tail) == (2, "worker: out of luck")


def test_a_restart_appends_to_the_same_log_each_start_marked(tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    process = sh("echo run", log, marker="test")
    for _ in range(2):
        assert process.start().wait(60) == 0
    lines = log.read_text().splitlines()
    assert [line.split(" started at ")[0] for line in lines if line] == [
        "--- test: sh",
        "run",
        "--- test: sh",
        "run",
    ]


def test_stop_all_kills_what_ignores_sigterm_after_the_grace_period(tmp_path: Path) -> None:
    log = tmp_path / "e.log"
    stubborn = sh(
        "trap '' TERM; echo trapped; exec sleep 60", log, ready=lambda: said("trapped", log)
    )
    polite = sh("exec sleep 60", tmp_path / "f.log")
    for process in (stubborn, polite):
        process.start()
    stubborn.wait_ready(60)
    stop_all([stubborn, polite], grace_s=1.0)
    assert (stubborn.exit_code, polite.exit_code) == (-signal.SIGKILL, -signal.SIGTERM)


def test_it_refuses_to_start_twice_and_to_wait_without_a_probe(tmp_path: Path) -> None:
    with sh("exec sleep 60", tmp_path / "g.log") as process:
        with pytest.raises(ServiceError, match="already running"):
            process.start()
        with pytest.raises(ServiceError, match="no readiness probe"):
            process.wait_ready(1)


def test_stdin_is_read_from_a_file_on_every_start(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("one\ntwo\n")
    log = tmp_path / "g.log"
    process = ManagedProcess("cat", ["cat"], log, stdin=source)
    for _ in range(2):
        assert process.start().wait(60) == 0
    assert log.read_text() == "one\ntwo\none\ntwo\n"
    # Without one it reads nothing: cat ends at once.
    assert ManagedProcess("cat", ["cat"], tmp_path / "h.log").start().wait(60) == 0
