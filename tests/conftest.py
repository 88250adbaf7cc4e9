"""Session-scoped fixtures that run the real services of twin_stream.devtools.stack, the helpers
the integration and e2e tests share, and the checks every test under tests/ is held to.

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

The shared helpers, imported from here (``from tests.conftest import ...``): an MQTT client
that collects what it receives (:func:`connect`, :func:`close`), :func:`wait_until` a condition,
InfluxQL reads of what the sink stored (:func:`influxql`, :func:`rows`, :func:`stored_seqs`),
the bridge and the sink as threads (:func:`running_bridge`, :func:`running_sink`), twin-API
tokens (:func:`make_tokens`), one request to a twin API (:func:`http`) and ``twin-stream
worker`` processes with the questions tests ask of them (:class:`Workers`). The running
pipelines built from them are fixtures of ``e2e/conftest.py`` and ``integration/conftest.py``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from twin_stream.auth import TokenFile, TokenStore
from twin_stream.bridge import run_bridge
from twin_stream.bridge.uplink import BridgeStats, MqttEndpoint
from twin_stream.devtools.stack import Stack, StackState, free_port
from twin_stream.devtools.stack.harness import ManagedProcess, answers, stop_all
from twin_stream.domain.devices import fleet_device
from twin_stream.domain.topics import kafka_topics
from twin_stream.mqtt_auth import BRIDGE_USER, MqttAccount
from twin_stream.sink import InfluxTarget, Sink, make_sink

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


# --- helpers the integration and e2e tests share (imported from here) ---------------------------


@dataclass
class Collected:
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)
    suback_codes: list[Any] = field(default_factory=list)
    puback_codes: dict[int, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def topics(self) -> list[str]:
        with self.lock:
            return [m.topic for m in self.messages]


def connect(
    port: int, username: str, password: str, *, protocol: int = mqtt.MQTTv5
) -> tuple[mqtt.Client, Collected]:
    """A connected client (network loop in a thread) and what it receives."""
    got = Collected()
    connected = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:10]}", protocol=protocol
    )
    client.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        assert not reason_code.is_failure, f"login of {username} refused: {reason_code}"
        connected.set()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with got.lock:
            got.messages.append(message)

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        got.suback_codes.extend(codes)

    def on_publish(_c: Any, _u: Any, mid: int, reason_code: Any, _p: Any) -> None:
        got.puback_codes[mid] = reason_code

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not connected.wait(10):
        close(client)  # its network thread and socket go with it
        raise TimeoutError(f"{username} did not get a CONNACK")
    return client, got


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def close(client: mqtt.Client) -> None:
    """Disconnect, then wait for the network thread to end (it closes the socket)."""
    client.disconnect()
    client.loop_stop()


# --- InfluxDB: InfluxQL queries of what the sink stored --------------------------------------


def influxql(base_url: str, q: str, db: str | None = None) -> dict[str, Any]:
    params = {"q": q, "epoch": "ms", **({"db": db} if db else {})}
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(f"{base_url}/query", data=data, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def rows(base_url: str, db: str, q: str) -> list[dict[str, Any]]:
    """Every row an InfluxQL query returns (time in epoch ms), each with its series' tags."""
    result = influxql(base_url, q, db)["results"][0]
    assert "error" not in result, (q, result["error"])
    return [
        {**s.get("tags", {}), **dict(zip(s["columns"], values, strict=True))}
        for s in result.get("series", [])
        for values in s["values"]
    ]


def stored_seqs(
    base_url: str, db: str = "twin", since: float | None = None
) -> list[tuple[str, int]]:
    """(device_id, seq) of every telemetry point stored in ``db`` (from ``since``, unix s)."""
    where = f" WHERE time >= {int(since * 1000)}ms" if since is not None else ""
    q = f'SELECT "seq" FROM "telemetry"{where} GROUP BY "device_id"'
    return [(r["device_id"], r["seq"]) for r in rows(base_url, db, q)]


# --- the platform's services, run by a test: the bridge and the sink as threads, the workers as
# processes, and the twin API they serve -------------------------------------------------------


@contextmanager
def running_bridge(
    broker: MqttBroker, bootstrap: str, prefix: str, **kwargs: Any
) -> Iterator[list[BridgeStats]]:
    """The bridge (MQTT -> Kafka, and desired state back) as a thread of this process, on the
    ``prefix`` topics, from when it is connected until the block ends; its stats at the end."""
    stop, ready = threading.Event(), threading.Event()
    endpoint = MqttEndpoint(
        "127.0.0.1",
        broker.port,
        broker.bridge.username,
        broker.bridge.password,
        client_id=f"{prefix}-bridge",
    )
    result: list[BridgeStats] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_bridge(
                endpoint,
                bootstrap,
                stop=stop,
                share_group=prefix,
                topics=kafka_topics(prefix),
                on_ready=ready,
                **kwargs,
            )
        ),
        name="bridge",
    )
    thread.start()
    try:
        assert ready.wait(60), "bridge did not start"
        yield result
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()


@contextmanager
def running_sink(
    bootstrap: str, influx_url: str, prefix: str, *, batch_size: int = 500
) -> Iterator[Sink]:
    """The sink (Kafka -> InfluxDB database ``twin``) as a thread of this process, on the
    ``prefix`` topics, while the block runs."""
    sink = make_sink(
        bootstrap,
        InfluxTarget(influx_url, "unused", "twin", "twin"),
        group_id=f"{prefix}-sink",
        topics=kafka_topics(prefix),
        batch_size=batch_size,
        flush_interval_s=0.5,
    )
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            sink.run(stop)
        except BaseException as e:  # kept, and raised when the block ends: never lost
            failures.append(e)
            raise

    group_log = GroupLog(f"{prefix}-sink")
    thread = threading.Thread(target=run, name="sink")
    with group_log.kept():
        thread.start()
        sink_threads[sink] = thread
        sink_logs[sink] = group_log
        try:
            yield sink
        finally:
            stop.set()
            thread.join(60)
            sink_threads.pop(sink, None)
            sink_logs.pop(sink, None)
    assert not thread.is_alive()
    if failures:
        raise AssertionError(f"the sink's thread failed: {failures[0]!r}") from failures[0]


#: The thread of each sink :func:`running_sink` runs, for :func:`describe_sink`.
sink_threads: dict[Sink, threading.Thread] = {}


class GroupLog(logging.Handler):
    """The last lines kafka-python's group coordinator logged about one consumer group (its
    joins, assignments and errors), for a test that waited in vain for that group's consumer
    to say where it stopped. While :meth:`kept`, the coordinator logs at INFO."""

    LOGGER = "kafka.coordinator"

    def __init__(self, group_id: str, lines: int = 40) -> None:
        super().__init__(logging.INFO)
        self.group_id = group_id
        self.lines: deque[str] = deque(maxlen=lines)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.group_id in message:
            stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
            self.lines.append(f"{stamp} {record.levelname} {message}")

    @contextmanager
    def kept(self) -> Iterator[GroupLog]:
        logger = logging.getLogger(self.LOGGER)
        level = logger.level
        logger.addHandler(self)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


#: The coordinator's log of each sink's group, for :func:`describe_sink`.
sink_logs: dict[Sink, GroupLog] = {}


def sink_holds_its_partitions(sink: Sink, partitions: int) -> bool:
    """Whether the sink's consumer holds all ``partitions`` of each topic it reads (the sink
    is the only member of its group): what a check of stored points needs first."""
    return len(sink.consumer.assignment() or ()) == partitions * len(sink.kind_of_topic)


def describe_sink(sink: Sink) -> str:
    """What a test that waited in vain for the sink's points reports: whether its thread
    runs, its counters, and the partitions its consumer holds."""
    thread = sink_threads.get(sink)
    alive = thread is not None and thread.is_alive()
    assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in sink.consumer.assignment() or ())
    group = sink_logs.get(sink)
    said = "\n  ".join(group.lines) if group is not None and group.lines else "nothing"
    return (
        f"sink thread alive={alive}, {sink.stats}, {len(assigned)} partitions: {assigned}; "
        f"its group's coordinator logged:\n  {said}"
    )


def make_tokens(path: Path, roles: dict[str, str]) -> dict[str, str]:
    """Add a twin-API token per name in ``roles`` (name -> role) to the tokens file ``path``;
    the tokens, by role."""
    made: dict[str, str] = {}

    def add(store: TokenStore) -> TokenStore:
        for name, role in roles.items():
            store, made[role] = store.add(name, role, now=datetime.now(UTC))
        return store

    TokenFile(path).change(add)
    return made


def http(
    method: str,
    url: str,
    token: str | None = None,
    body: object | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30.0,
) -> tuple[int, Any, dict[str, str]]:
    """One request to a twin API: (status, JSON body, headers); status 0 if nothing answered,
    and a body that is no JSON comes back as text."""
    sent = {"Content-Type": "application/json"} | (headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, answered = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as e:
        with e:
            raw, status, answered = e.read(), e.code, dict(e.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None, {}
    try:
        return status, json.loads(raw or b"null"), answered
    except ValueError:
        return status, raw.decode(errors="replace"), answered


@dataclass
class Workers:
    """``twin-stream worker`` processes 0, 1... on one Kafka and topic prefix, each with its twin
    API on a port of its own, its data (``worker-N``) and log (``worker-N.log``) under ``root``.

    ``env`` is added to the workers' environment (the API's tokens, say), ``args`` to their
    command line; ``token`` is the one the questions below ask the API with."""

    root: Path
    bootstrap: str
    prefix: str
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    token: str | None = None
    processes: dict[int, ManagedProcess] = field(default_factory=dict)
    ports: dict[int, int] = field(default_factory=dict)

    def start(self, i: int) -> ManagedProcess:
        """Start worker ``i`` (again: on its port, its data dir and its log); ready once
        ``GET /ready`` answers 200 (partitions assigned, tables recovered, streams running)."""
        self.ports.setdefault(i, free_port())
        args = ["worker", "--web-port", str(self.ports[i])]
        args += ["--data-dir", str(self.root / f"worker-{i}"), "--topic-prefix", self.prefix]
        self.processes[i] = ManagedProcess.twin_stream(
            f"worker-{i}",
            [*args, *self.args],
            self.root / f"worker-{i}.log",
            env={"TWIN_KAFKA__BOOTSTRAP": self.bootstrap, **self.env},
            ready=answers(self.url(i, "/ready")),
        ).start()
        return self.processes[i]

    def kill(self, i: int) -> None:
        """SIGKILL worker ``i``: no goodbye, no final commit."""
        self.processes[i].kill()

    def stop(self) -> None:
        stop_all(self.processes.values())

    def url(self, i: int, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[i]}{path}"

    def get(self, i: int, path: str) -> tuple[int, Any]:
        """``GET path`` on worker ``i`` with :attr:`token`: (status, JSON body)."""
        status, body, _ = http("GET", self.url(i, path), self.token)
        return status, body

    def ready(self) -> bool:
        """Every worker is in the group and scoring: partitions assigned, no rebalance under
        way, no table recovering (``GET /ready``). One that died fails the wait at once, with
        the end of its log."""
        for process in self.processes.values():
            process.check()
        return all(http("GET", self.url(i, "/ready"))[0] == 200 for i in sorted(self.ports))

    def local(self, i: int) -> set[str] | None:
        """The devices worker ``i`` owns now (None if it does not answer)."""
        status, twins = self.get(i, "/twins?scope=local")
        return {t["device_id"] for t in twins} if status == 200 else None

    def owners(self, device_id: str) -> list[int]:
        """The workers that say they own the device now."""
        return [i for i in sorted(self.ports) if device_id in (self.local(i) or set())]

    def owner(self, device_id: str) -> int:
        """The worker that owns the device, once exactly one says so (not for a moment none,
        while a worker that missed its heartbeats on a loaded machine rejoins the group)."""
        assert wait_until(lambda: len(self.owners(device_id)) == 1, timeout=120, interval=1.0), (
            f"no single worker owns {device_id}:\n{self.logs()}"
        )
        (worker,) = self.owners(device_id)
        return worker

    def settled(self, devices: Iterable[str]) -> bool:
        """Every worker ready, each of ``devices`` owned by exactly one of them (not
        necessarily every worker some), and every worker answering for every one of them.

        Owning every device between them is not enough: the first worker may own them all
        before the second joined, and the rebalance that follows moves partitions while their
        tables recover, so a twin asked for then answers 404 for a moment."""
        if not self.ready():
            return False
        wanted = sorted(devices)
        mine = [self.local(i) for i in sorted(self.ports)]
        if any(own is None for own in mine):
            return False
        owned = sorted(d for own in mine for d in own or () if d in wanted)
        if owned != wanted:
            return False
        return all(
            self.get(i, f"/twins/{device_id}")[0] == 200
            for i in sorted(self.ports)
            for device_id in wanted
        )

    def logs(self, chars: int = 2500) -> str:
        """The end of every worker's log."""
        return "\n".join(
            f"--- worker-{i}\n"
            + (self.root / f"worker-{i}.log").read_text(errors="replace")[-chars:]
            for i in sorted(self.ports)
        )


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
