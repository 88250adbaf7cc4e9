"""The devices a worker owns: their cached state, and when each is checkpointed to the tables.

The twin and the models (detector and alert policy) live in two tables backed by changelog
topics. Writing the models on every reading would cost a pickle and a changelog record per
event, so a device's models are saved every ``every`` readings or ``interval_s`` seconds,
whichever comes first, and at once after an event that opened, changed or resolved an alert.
A restarted or rebalanced worker resumes the device from there and reads its telemetry again
from the reading after the checkpoint (the device's replay point, :mod:`.replay`), so that no
reading goes unlearned. Between checkpoints the state is kept in memory, for as long as this
worker owns the device.

The tables are plain mappings here (Faust tables in the worker, dicts in the tests):

>>> from twin_stream.worker.processing import Outputs
>>> twins, models = {}, {}
>>> cache = DeviceCache(twins, models, every=2, interval_s=3600.0, clock=lambda: 0.0)
>>> state = cache.load("pump-0001")
>>> cache.is_due("pump-0001", state)
False
>>> state.events_since_checkpoint = 2
>>> cache.is_due("pump-0001", state)
True
>>> cache.save("pump-0001", state, Outputs(twin_changed=True), reading=False)
>>> list(twins), state.twin.version
([b'pump-0001'], 0)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping

from twin_stream.worker.processing import DeviceState, Outputs
from twin_stream.worker.replay import ReplayPoint

__all__ = ["DeviceCache"]

log = logging.getLogger(__name__)

#: A table of bytes keys (the device id) and bytes values; ``get`` answers None when absent.
Table = MutableMapping[bytes, bytes | None]


class DeviceCache:
    """The states of the devices this worker owns, and their checkpoint bookkeeping."""

    def __init__(
        self,
        twins: Table,
        models: Table,
        *,
        every: int,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        replay: Table | None = None,
    ) -> None:
        self.twins = twins
        self.models = models
        #: Held by every agent and timer while it changes devices' states and produces what
        #: the changes made: the events of one device reach ``twin.alerts`` in the order its
        #: state changed, whichever agent changed it (a batch of telemetry sends its records
        #: after the whole batch; a will handled meanwhile must not be sent before them).
        self.lock = asyncio.Lock()
        #: Each device's replay point (:mod:`twin_stream.worker.replay`); None: not kept.
        self.replay = replay
        self.every = every
        self.interval_s = interval_s
        self.clock = clock
        self._states: dict[str, DeviceState] = {}
        self._last_checkpoint: dict[str, float] = {}
        self._saved_version: dict[str, int] = {}  # the twin version last written, per device
        #: Checkpoints that failed (:meth:`try_save`), and when one was last logged (clock s).
        self.save_failures = 0
        self._failure_logged_at: float | None = None

    def peek(self, device_id: str) -> DeviceState:
        """The state for a read-only view: never cached, so a worker that does not own the
        device cannot keep a stale copy of it."""
        state = self._states.get(device_id)
        if state is not None:
            return state
        key = device_id.encode()
        return DeviceState.restore(device_id, self.twins.get(key), self.models.get(key))

    def load(self, device_id: str) -> DeviceState:
        """The state to update: cached while this worker owns the device."""
        state = self._states.get(device_id)
        if state is None:
            state = self._states[device_id] = self.peek(device_id)
            if self.replay is not None:
                state.replay_point = ReplayPoint.read(self.replay.get(device_id.encode()))
            if (point := state.replay_point) is not None:
                # The twin may have been saved after the models (a status, a command, a new
                # device's first reading): the readings after the point are read again and
                # must not be taken for duplicates.
                point.restore(state.twin)
            # The tables hold this state as of now: its interval starts here. A device new to
            # this worker is not checkpointed at its first reading (a fleet coming online
            # would otherwise pay a pickle and two changelog records per device at once, and
            # stall every device's scoring behind them: bench e2e --devices 1000).
            self._last_checkpoint.setdefault(device_id, self.clock())
        return state

    def replay_points(self) -> list[ReplayPoint]:
        """Every replay point in the table (those of the partitions this worker holds)."""
        if self.replay is None:
            return []
        points = (ReplayPoint.read(data) for data in list(self.replay.values()))
        return [point for point in points if point is not None]

    def before_reading(self, state: DeviceState, partition: int, offset: int) -> bool:
        """A telemetry record of the device is about to be handled: False if its checkpoint
        holds it already (a replayed reading from before the device's own replay point);
        otherwise remember where it is, and, for a device without a replay point, anchor one
        here (written with the reading: :meth:`save`)."""
        point = state.replay_point
        if point is not None and point.covers(partition, offset):
            return False
        if point is None and state.anchor is None and self.replay is not None:
            state.anchor = ReplayPoint.of(state.twin, partition, offset)
        state.reading_at = (partition, offset)
        return True

    def forget(self, device_id: str) -> None:
        """Drop a device's cached state (an event failed half-way through it): its next event
        loads it from the tables, as after a rebalance."""
        self._states.pop(device_id, None)
        self._saved_version.pop(device_id, None)

    def items(self) -> list[tuple[str, DeviceState]]:
        """Every cached device and its state (a copy: safe to iterate while events arrive)."""
        return list(self._states.items())

    def is_due(self, device_id: str, state: DeviceState, now: float | None = None) -> bool:
        """Whether the device's models are due for a checkpoint (enough readings or time)."""
        now = self.clock() if now is None else now
        return (
            state.events_since_checkpoint >= self.every
            or now - self._last_checkpoint.get(device_id, 0.0) >= self.interval_s
        )

    def last_checkpoint(self, device_id: str) -> float | None:
        """When (on :attr:`clock`) the device's models were last saved by this worker."""
        return self._last_checkpoint.get(device_id)

    def save(self, device_id: str, state: DeviceState, out: Outputs, *, reading: bool) -> None:
        """Write the twin and the models to their tables (and so to their changelogs).

        A reading changes only the twin's latest values and counters: the twin is written
        with the models, at checkpoints. Anything else (connectivity, settings, desired
        state, dead letters) and any version change is written at once.
        """
        key = device_id.encode()
        now = self.clock()
        due = self.is_due(device_id, state, now)
        changed_version = self._saved_version.get(device_id) != state.twin.version
        # An event that opened, changed or resolved an alert is checkpointed at once: a
        # worker that takes the device over knows the alert (it resolves it, it does not
        # open it again).
        models_due = state.monitor is not None and ((reading and due) or bool(out.alerts))
        if models_due or (out.twin_changed and (not reading or changed_version or due)):
            self.twins[key] = state.twin.model_dump_json().encode()
            self._saved_version[device_id] = state.twin.version
        if models_due:
            self.models[key] = state.models_bytes()
            state.events_since_checkpoint = 0
            self._last_checkpoint[device_id] = now
            if state.reading_at is not None:
                partition, offset = state.reading_at
                self._write_point(key, state, ReplayPoint.of(state.twin, partition, offset + 1))
        elif reading and state.anchor is not None:
            self._write_point(key, state, state.anchor)

    def try_save(self, device_id: str, state: DeviceState, out: Outputs, *, reading: bool) -> bool:
        """:meth:`save`, but a table write that fails (Faust's metadata of a changelog not
        there just after Kafka came back, say) is logged and tried again at the device's next
        event, rather than crashing the agent and so the scoring of every device it serves.
        False if it failed (counted in :attr:`save_failures`)."""
        try:
            self.save(device_id, state, out, reading=reading)
        except Exception:
            self.save_failures += 1
            now = self.clock()
            last = self._failure_logged_at
            if last is None or now - last >= 30.0:  # one traceback per 30 s, with the count
                self._failure_logged_at = now
                log.exception(
                    "checkpoint of %s failed (%d failures so far); its state is kept and "
                    "saved at its next event",
                    device_id,
                    self.save_failures,
                )
            return False
        return True

    def _write_point(self, key: bytes, state: DeviceState, point: ReplayPoint) -> None:
        if self.replay is None:
            return
        self.replay[key] = point.encode()
        state.replay_point, state.anchor = point, None

    def on_assigned(self) -> None:
        """Partitions were assigned: what this worker owns now is loaded afresh from the
        tables, and every twin is written again at its next event."""
        self._states.clear()
        self._saved_version.clear()

    def on_revoked(self) -> None:
        """Partitions may move: whoever owns a device after the rebalance loads it from the
        tables (its last checkpoint), so a stale copy is never used. (Faust tables can only
        be written while handling an event, so nothing is saved here.)"""
        self._states.clear()
