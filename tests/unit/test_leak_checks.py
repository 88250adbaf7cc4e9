"""The leak checks of tests/conftest.py fire: a leaked thread or an unclosed socket fails the test
that leaked it, and a test that uses a real service without `pytest.mark.services` is refused.

Each case runs a tiny test file in a pytest of its own (a subprocess, so that the threads and
sockets it leaks on purpose die with it), with tests/conftest.py as a plugin and this project's
own warning filters, read from pyproject.toml.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

Run = Callable[..., pytest.RunResult]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    lines = ["[pytest]"]
    for key in ("markers", "filterwarnings"):
        lines += [f"{key} =", *(f"    {value}" for value in options["ini_options"][key])]
    pytester.makeini("\n".join(lines) + "\n")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("COLUMNS", "400")  # the summary lines in full
    monkeypatch.delenv("CI", raising=False)

    def run_inner(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_inner=source)
        return pytester.runpytest_subprocess(
            "-p", "tests.conftest", "-p", "no:cacheprovider", "-ra", *args, timeout=120
        )

    return run_inner


def test_a_thread_left_running_fails_the_test_that_started_it_and_only_that_one(run: Run) -> None:
    result = run(
        """
        import threading

        STOP = threading.Event()

        def test_leaks_a_thread():
            threading.Thread(target=STOP.wait, name="leaky").start()

        def test_leaks_a_daemon_thread():
            threading.Thread(target=STOP.wait, name="leaky-daemon", daemon=True).start()

        def test_leaks_a_thread_through_a_thread():
            def parent():
                threading.Thread(target=STOP.wait, name="grandchild").start()

            thread = threading.Thread(target=parent, name="parent")
            thread.start()
            thread.join()

        def test_stops_its_thread():
            stop = threading.Event()
            thread = threading.Thread(target=stop.wait, name="tidy")
            thread.start()
            stop.set()  # the grace join lets it end: not a leak

        def test_after_the_leaks():
            STOP.set()
        """
    )
    result.assert_outcomes(passed=5, errors=3)
    result.stdout.fnmatch_lines(
        [
            "ERROR test_inner.py::test_leaks_a_thread - Failed: the test left 1 thread(s) "
            "running: 'leaky' (non-daemon, target Event.wait)",
            "ERROR test_inner.py::test_leaks_a_daemon_thread - Failed: the test left 1 "
            "thread(s) running: 'leaky-daemon' (daemon, target Event.wait)",
            "ERROR test_inner.py::test_leaks_a_thread_through_a_thread - Failed: the test left 1 "
            "thread(s) running: 'grandchild' (non-daemon, target Event.wait, started by 'parent')",
        ]
    )


def test_a_module_fixture_that_leaves_its_threads_running_fails_at_its_teardown(run: Run) -> None:
    result = run(
        """
        import threading
        import pytest

        def server(name):
            \"\"\"A thread that starts a worker thread when asked, while the tests run.\"\"\"
            stop, asked, started = threading.Event(), threading.Event(), threading.Event()

            def serve():
                asked.wait()
                if not stop.is_set():
                    worker = threading.Thread(target=stop.wait, name=f"{name}-worker", daemon=True)
                    worker.start()
                    started.set()

            thread = threading.Thread(target=serve, name=name, daemon=True)
            thread.start()
            return stop, asked, started

        @pytest.fixture(scope="module")
        def tidy_server():
            stop, asked, started = server("tidy")
            yield asked, started
            stop.set()
            asked.set()

        @pytest.fixture(scope="module")
        def sloppy_server():
            _, asked, started = server("sloppy")
            yield asked, started  # and never stops it

        def test_one(tidy_server, sloppy_server):
            for asked, started in (tidy_server, sloppy_server):
                asked.set()
                assert started.wait(5)

        def test_two(tidy_server, sloppy_server):  # the fixtures' threads are not the tests'
            pass
        """
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "ERROR test_inner.py::test_two - Failed: fixture 'sloppy_server' left 1 thread(s) "
            "running after its teardown: 'sloppy-worker' (daemon, target Event.wait, "
            "started by 'sloppy')",
        ]
    )


def test_an_unclosed_socket_fails_the_test_that_dropped_it(run: Run) -> None:
    result = run(
        """
        import gc
        import socket

        def test_drops_a_socket():
            socket.socket()

        def test_drops_a_socket_in_a_reference_cycle():
            # Found only by the collector: the teardown's gc.collect() finds it here, not in
            # whichever later test the collector would have run in.
            gc.disable()
            holder = {"socket": socket.socket()}
            holder["self"] = holder

        def test_closes_its_socket():
            gc.enable()
            with socket.socket():
                pass
        """
    )
    result.assert_outcomes(passed=2, failed=1, errors=1)
    for line in (
        "FAILED test_inner.py::test_drops_a_socket - *Exception ignored in: <socket.socket*",
        "ERROR test_inner.py::test_drops_a_socket_in_a_reference_cycle - "
        "*Exception ignored in: <socket.socket*",
        "*ERROR at teardown of test_drops_a_socket_in_a_reference_cycle*",
        "E   ResourceWarning: unclosed <socket.socket*",
    ):
        result.stdout.fnmatch_lines([line])


def test_a_test_using_a_service_without_the_services_mark_is_refused(run: Run) -> None:
    result = run(
        """
        import pytest

        def test_unmarked(kafka_bootstrap):
            pass

        @pytest.mark.services
        def test_marked(influxdb_url):
            pass
        """,
        "--collect-only",
        "-m",
        "services",  # which would deselect the unmarked test: it is checked before that
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*lack `pytest.mark.services`*", "  test_inner.py::test_unmarked (uses kafka_bootstrap)"]
    )
    assert "test_marked" not in result.stderr.str()
