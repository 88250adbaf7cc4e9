"""Session-scoped fixtures that run the real services of twin_stream.devtools.stack, and the
checks every test under tests/ is held to.

Each service starts once per test session, on a free loopback port in a temp dir, and stops at
the end. A missing service is an error, never a skip: the whole point of these tests is that the
real thing works.

Leaks fail the test that made them (as in Faust's tests/conftest.py), instead of being silenced:

* a thread the test (or one of its function-scoped fixtures) started and that still runs after
  its teardown is an error at that teardown; a thread a module- or session-scoped fixture
  started and that still runs after that fixture's teardown is an error at that teardown;
* an unclosed socket (any object whose finaliser warns: ``ResourceWarning``) is an error of the
  test that dropped it: ``filterwarnings = error`` turns the warning into an unraisable exception
  that pytest reports as ``PytestUnraisableExceptionWarning`` after each phase, and the
  ``gc.collect()`` at each teardown finds sockets held in reference cycles there, not in
  whichever later test the collector happens to run;
* a test that uses a service fixture must carry ``pytest.mark.services`` (checked at
  collection).
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import pytest

from twin_stream.devtools.stack import Stack, StackState
from twin_stream.domain.devices import fleet_device
from twin_stream.mqtt_auth import BRIDGE_USER, MqttAccount

TEST_DEVICES = [fleet_device(i)[0] for i in range(1, 21)]  # pump-0001, vent-0002, ...

# The fixtures below start real services: a test that uses one needs `pytest.mark.services`.
SERVICE_FIXTURES = frozenset({"mosquitto", "kafka_bootstrap", "influxdb_url"})

# How long a thread that was told to stop may take to end after a teardown (a paho loop or a
# kafka-python network thread finishing its last select) before it counts as leaked.
THREAD_GRACE_S = 2.0


@dataclass(frozen=True)
class MqttBroker:
    """A running Mosquitto and the accounts it accepts."""

    host: str
    port: int
    accounts: dict[str, MqttAccount]

    def account(self, username: str) -> MqttAccount:
        return self.accounts[username]

    @property
    def bridge(self) -> MqttAccount:
        return self.accounts[BRIDGE_USER]


def _start(tmp_path_factory: pytest.TempPathFactory, service: str, **kwargs: object) -> Stack:
    root = tmp_path_factory.mktemp(f"stack-{service}")
    stack = Stack(root, services=[service], **kwargs)  # type: ignore[arg-type]
    stack.up(timeout=120)
    return stack


def _state(stack: Stack) -> StackState:
    assert stack.state is not None
    return stack.state


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    stack = _start(tmp_path_factory, "mosquitto", device_ids=TEST_DEVICES)
    info = _state(stack).services["mosquitto"]
    yield MqttBroker("127.0.0.1", info.port, {a.username: a for a in stack.accounts})
    stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = _start(tmp_path_factory, "kafka")
    yield _state(stack).url("kafka")
    stack.down()


@pytest.fixture(scope="session")
def influxdb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stack's InfluxDB (1.13, built by ``make influxd``): v2 write API and InfluxQL."""
    stack = _start(tmp_path_factory, "influxdb")
    yield _state(stack).url("influxdb")
    stack.down()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: for Kafka topics, consumer groups, databases, client ids."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:8]}"


# --- leaked threads and sockets ----------------------------------------------------------------


# threading keeps no record of which thread started which: this does (see pytest_configure). A
# thread that a fixture's thread starts while a test runs (the urllib3 pool watcher of the e2e
# sink's InfluxDB client, say) is that fixture's, not the test's.
_STARTED_BY = "_leak_check_started_by"


def pytest_configure(config: pytest.Config) -> None:
    start = threading.Thread.start

    def recording_start(self: threading.Thread) -> None:
        setattr(self, _STARTED_BY, threading.current_thread())
        start(self)

    threading.Thread.start = recording_start  # type: ignore[method-assign]
    config.add_cleanup(lambda: setattr(threading.Thread, "start", start))


def _ancestors(thread: threading.Thread) -> Iterator[threading.Thread]:
    seen = {thread}
    parent = getattr(thread, _STARTED_BY, None)
    while parent is not None and parent not in seen:
        yield parent
        seen.add(parent)
        parent = getattr(parent, _STARTED_BY, None)


def _alive_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def _describe(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    what = [
        "daemon" if thread.daemon else "non-daemon",
        f"target {getattr(target, '__qualname__', None) or repr(target)}",
    ]
    parent = next(_ancestors(thread), None)
    if parent is not None and parent is not threading.main_thread():
        what.append(f"started by {parent.name!r}")
    return f"{thread.name!r} ({', '.join(what)})"


def _lingering(threads: set[threading.Thread]) -> list[str]:
    """Those of ``threads`` still running after a grace join, described."""
    deadline = time.monotonic() + THREAD_GRACE_S
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(_describe(t) for t in threads if t.is_alive())


def _started_here(thread: threading.Thread, before: set[threading.Thread]) -> bool:
    """Whether ``thread``, new since ``before``, was started by this thread or by threads it
    started since, rather than by a thread already running (a fixture's)."""
    for ancestor in _ancestors(thread):
        if ancestor in before:
            return ancestor is threading.current_thread()
    return True  # not started through threading.Thread.start: count it


@pytest.fixture(autouse=True)
def no_leaked_threads_or_sockets() -> Iterator[None]:
    """Fail the test if it leaves a thread running or drops an unclosed socket.

    Autouse function-scoped fixtures are set up after every higher-scoped fixture the test uses
    and before its other function-scoped ones, and torn down after those. So ``before`` holds
    exactly the threads that are not this test's: the session's own, and those of the session-
    and module-scoped fixtures it uses (the bridge and sink of the e2e ``pipeline``), which are
    checked when those fixtures end instead (``pytest_fixture_post_finalizer``), along with the
    threads those threads start meanwhile. That is the whole allow-list: no thread is let through
    by its name. A thread leaked by an earlier test is in ``before`` too, so it fails that test
    only.
    """
    __tracebackhide__ = True
    before = _alive_threads()
    yield
    # Sockets (and other finalisable resources) held in reference cycles are freed here, so
    # their ResourceWarning is reported at this test's teardown, not at a later test's.
    gc.collect()
    leaked = _lingering({t for t in _alive_threads() - before if _started_here(t, before)})
    if leaked:
        pytest.fail(f"the test left {len(leaked)} thread(s) running: " + ", ".join(leaked))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what exists once the tests are collected (modules, test items) out of the garbage
    collector's sight: it lives for the session anyway, and each teardown's ``gc.collect()``
    then only scans what the tests allocated (over the unit tests: 4.5 s instead of 50 s).
    ``pytest_sessionfinish`` unfreezes it, before pytest's own last collection."""
    gc.collect()
    gc.freeze()


_FIXTURE_THREADS = pytest.StashKey[dict[object, set[threading.Thread]]]()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Remember the threads a module- or session-scoped fixture starts."""
    if fixturedef.scope == "function":  # checked with the test, above
        return (yield)
    before = _alive_threads()
    try:
        return (yield)
    finally:
        started = request.config.stash.setdefault(_FIXTURE_THREADS, {})
        started[fixturedef] = _alive_threads() - before


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> None:
    """After a module- or session-scoped fixture's teardown, the threads it started, and those
    they started, are gone; and so are the sockets it dropped (reported at the teardown of the
    test it ends with)."""
    __tracebackhide__ = True
    if fixturedef.scope == "function":
        return
    gc.collect()
    started = request.config.stash.get(_FIXTURE_THREADS, {}).pop(fixturedef, set())
    if not started:
        return
    leaked = _lingering(
        {t for t in _alive_threads() if t in started or not started.isdisjoint(_ancestors(t))}
    )
    if leaked:
        pytest.fail(
            f"fixture {fixturedef.argname!r} left {len(leaked)} thread(s) running after its "
            "teardown: " + ", ".join(leaked)
        )


# --- marks and CI ------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a real service carries `pytest.mark.services`, so that ``-m "not
    services"`` means what it says. Checked on every collected test, before ``-m``/``-k``
    deselect any."""
    unmarked = []
    for item in items:
        uses = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("services") is None:
            unmarked.append(f"  {item.nodeid} (uses {', '.join(sorted(uses))})")
    if unmarked:
        raise pytest.UsageError(
            "these tests use a real service but lack `pytest.mark.services` "
            "(add `pytestmark = pytest.mark.services` to their module):\n" + "\n".join(unmarked)
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may skip: a skipped test is a check that did not run."""
    gc.unfreeze()  # see pytest_collection_finish
    if os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if reporter is not None and skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; skips are failures in CI")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
