"""Replay after a restart: no reading goes unlearned, none is counted twice (issue 14).

A device's models are checkpointed every few hundred readings (:mod:`.checkpoint`), but Faust
commits the telemetry offsets every few seconds. Without more, a worker that takes over a
device (a restart, a rebalance) resumes it from its last checkpoint but reads telemetry from
the committed offset: the readings in between were handled by the previous owner and are
never learned by the models, and the alerts they opened are unknown to the new owner.

So each checkpoint also writes the device's **replay point** to the ``replay`` table: the
telemetry record to read again from (partition and offset, the one after the last reading
the models hold) and the twin's de-duplication window as of the checkpoint. A device new to
a worker gets one at its first reading (its own offset: nothing of it is saved yet).

After a rebalance, once the tables are recovered, each telemetry partition is read again
from the earliest replay point of its devices when that is before the committed offset
(:func:`plan_seeks`): the readings after each device's checkpoint go through the same code
again, in the same order, from the same state, so they give the same scores and the same
alert events (the same ids). A reading a device's checkpoint already holds is skipped, not
counted as a duplicate (:meth:`ReplayPoint.covers`). How far back a partition may be read
is capped (``max_records``): a device silent for long is checkpointed when its missed
heartbeat is handled, so its point does not hold the partition back.

>>> point = ReplayPoint(2, 120, last_seq=57, seen_mask=(1 << 100) - 1, counts=(57, 0, 0, 0, 0, 1))
>>> ReplayPoint.decode(point.encode()) == point
True
>>> point.covers(2, 119), point.covers(2, 120), point.covers(3, 5)
(True, False, False)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from twin_stream.domain.twin import Twin

__all__ = ["ReplayPoint", "install_replay", "plan_seeks"]

log = logging.getLogger(__name__)


#: The twin's data-quality counters that readings move (a replayed reading moves them again).
READING_COUNTERS: Final = ("accepted", "duplicates", "reordered", "stale", "gaps", "dropouts")


@dataclass(frozen=True, slots=True)
class ReplayPoint:
    """Where a device's telemetry is read again from, and, as of the checkpoint the point
    belongs to, its twin's de-duplication window (``last_seq``, ``seen_mask``) and the
    counters readings move (``counts``, in the order of :data:`READING_COUNTERS`)."""

    partition: int
    offset: int
    last_seq: int | None
    seen_mask: int
    counts: tuple[int, ...] = ()

    def encode(self) -> bytes:
        # The mask is wider than JSON's integers: hex.
        mask = f"{self.seen_mask:x}"
        return orjson.dumps([self.partition, self.offset, self.last_seq, mask, self.counts])

    def restore(self, twin: Twin) -> None:
        """Put the twin's window and reading counters back as they were at the checkpoint: the
        readings after it are read again, and counted again."""
        twin.last_seq, twin.seen_mask = self.last_seq, self.seen_mask
        for name, value in zip(READING_COUNTERS, self.counts, strict=False):
            setattr(twin.quality, name, value)

    @classmethod
    def of(cls, twin: Twin, partition: int, offset: int) -> ReplayPoint:
        """The point to read ``partition`` again from ``offset``, with the twin as it is."""
        counts = tuple(getattr(twin.quality, name) for name in READING_COUNTERS)
        return cls(partition, offset, twin.last_seq, twin.seen_mask, counts)

    @classmethod
    def decode(cls, data: bytes) -> ReplayPoint:
        """A point written by :meth:`encode` (ValueError for anything else)."""
        try:
            partition, offset, last_seq, hex_mask, counts = orjson.loads(data)
            mask = int(hex_mask, 16)
            counts = tuple(int(c) for c in counts)
        except (orjson.JSONDecodeError, TypeError, ValueError) as e:
            raise ValueError(f"not a replay point: {data[:60]!r}") from e
        if not all(isinstance(x, int) for x in (partition, offset)) or not (
            last_seq is None or isinstance(last_seq, int)
        ):
            raise ValueError(f"not a replay point: {data[:60]!r}")
        return cls(partition, offset, last_seq, mask, counts)

    @classmethod
    def read(cls, data: bytes | None) -> ReplayPoint | None:
        """A table's value as a point; None when there is none or it does not decode (the
        device is then anchored afresh at its next reading)."""
        if not data:
            return None
        try:
            return cls.decode(data)
        except ValueError:
            return None

    def covers(self, partition: int, offset: int) -> bool:
        """Whether the checkpoint holds the reading at ``partition``/``offset`` already."""
        return partition == self.partition and offset < self.offset


def plan_seeks(
    points: Iterable[ReplayPoint],
    committed: Mapping[int, int | None],
    *,
    max_records: int,
) -> dict[int, int]:
    """The partitions to read again from before their committed offset, and from where: the
    earliest replay point of each (at most ``max_records`` before the committed offset).

    ``committed`` maps each assigned telemetry partition to its committed offset, None when the
    consumer found none. A partition with replay points and no committed offset is read from
    its earliest point too: its devices were handled already, and where the consumer would
    start is not to be trusted then. Measured in a chaos run: a worker that took two
    partitions over at the workers' first rebalance was told "no committed offset", then
    fetched from offsets 30 and 58, while the previous owner had handled them up to 23 and 44:
    the readings in between were stored but never scored.

    >>> pts = [ReplayPoint(0, 90, 5, 1), ReplayPoint(0, 70, 9, 1), ReplayPoint(1, 300, 2, 1),
    ...        ReplayPoint(2, 10, 1, 1), ReplayPoint(3, 5, 1, 1)]
    >>> plan_seeks(pts, {0: 100, 1: 200, 2: 5000, 3: None, 4: None}, max_records=1000)
    {0: 70, 2: 4000, 3: 5}
    """
    earliest: dict[int, int] = {}
    for point in points:
        if point.partition in committed:
            seen = earliest.get(point.partition)
            if seen is None or point.offset < seen:
                earliest[point.partition] = point.offset
    seeks = {}
    for partition, offset in earliest.items():
        at = committed[partition]
        if at is None:
            seeks[partition] = offset
        elif offset < at:
            seeks[partition] = max(offset, at - max_records)
    return seeks


def install_replay(
    consumer: Any,
    topic: str,
    points: Callable[[], Iterable[ReplayPoint]],
    *,
    max_records: int,
) -> None:
    """Make Faust's consumer read ``topic``'s partitions again from their replay points.

    After a rebalance Faust recovers the tables, then seeks every assigned partition to its
    committed offset (``Consumer.perform_seek`` calls ``seek_to_committed``) and resumes the
    streams. This wraps ``seek_to_committed``: once it has sought, the telemetry partitions
    that have devices to replay are sought further back, and the offsets it answers say so
    (Faust reads every partition from the offsets it answers). ``points`` reads the replay
    table, recovered by then."""
    if getattr(consumer.seek_to_committed, "replays", False):
        return  # installed at an earlier rebalance
    original: Callable[[], Awaitable[Mapping[Any, int]]] = consumer.seek_to_committed

    async def seek_to_committed() -> Mapping[Any, int]:
        offsets = dict(await original())
        ours = {tp.partition: tp for tp in offsets if tp.topic == topic}
        committed = {p: offsets[tp] for p, tp in ours.items()}
        committed = {p: (o if o is not None and o >= 0 else None) for p, o in committed.items()}
        seeks = plan_seeks(points(), committed, max_records=max_records)
        for partition, offset in sorted(seeks.items()):
            tp = ours[partition]
            await consumer.seek(tp, offset)
            log.info(
                "replaying %s[%d] from offset %d (committed %s): readings after the devices' "
                "checkpoints",
                topic,
                partition,
                offset,
                offsets[tp],
            )
            offsets[tp] = offset
        return offsets

    seek_to_committed.replays = True  # type: ignore[attr-defined]
    consumer.seek_to_committed = seek_to_committed
