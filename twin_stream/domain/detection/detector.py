"""One device's detector: anomaly scores, failure predictions and data quality, with saveable
state.

This is what a worker runs per device (through :class:`twin_stream.domain.monitor.DeviceMonitor`):
each reading goes in; an :class:`AnomalyScore`, any :class:`Prediction` and the data-quality
findings that hold come out. :meth:`DeviceDetector.rebaseline` (maintenance done, new firmware)
forgets the learned normal, so the new normal after a repair is learned without paging anyone.
The whole state serialises to bytes (compressed pickle with the detector and River versions in a
header) and restores to a detector that gives the same scores.

>>> from datetime import datetime, timedelta, timezone
>>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> d = DeviceDetector("pump-0001", "infusion_pump")
>>> for i in range(200):
...     out = d.process(t0 + timedelta(seconds=i), i, {"motor_current": 0.25 + (i % 3) * 0.01})
>>> restored = DeviceDetector.loads(d.dumps())
>>> reading = {"motor_current": 0.7}
>>> d.process(t0, 200, reading).score.score == restored.process(t0, 200, reading).score.score
True
>>> len(d.dumps()) < 64 * 1024
True
>>> d.rebaseline(); d.anomaly.count
0
"""

from __future__ import annotations

import pickle
import zlib
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from typing import Any, Final

from twin_stream.domain.detection.anomaly import MAIN_MODE, AnomalyDetector
from twin_stream.domain.detection.health import HealthMonitor, HealthReading
from twin_stream.domain.detection.params import DETECTOR_VERSION, DetectorParams
from twin_stream.domain.detection.quality import QualityFinding, QualityMonitor
from twin_stream.domain.detection.rul import FleetModel
from twin_stream.domain.detection.state import restore_attributes
from twin_stream.domain.detection.trend import TrendPredictor
from twin_stream.domain.events import PredictionRecord, ScoreRecord, SignalContribution
from twin_stream.errors import StateError, StateVersionMismatch, map_exceptions

# StateVersionMismatch lives in twin_stream.errors; it is re-exported here, where it is raised.
__all__ = [
    "HEALTH_METRIC",
    "UNREADABLE_STATE",
    "DetectorOutput",
    "DeviceDetector",
    "StateVersionMismatch",
]

#: The ``metric`` of the fleet-learned remaining-useful-life prediction (``twin.predictions``).
HEALTH_METRIC: Final = "health_index"

_MAGIC = b"TSD1"
#: Pickles of River models do not load across River versions: the state records it.
_RIVER = version("river")

#: What decompressing and unpickling bytes that are not (or no longer) saved state raises:
#: a cut or corrupted blob (zlib, pickle, EOF, a header that is not text), or a pickle of
#: classes this code no longer has or builds differently (import, attribute, type, key errors).
UNREADABLE_STATE: Final[dict[type[BaseException], type[StateError]]] = {
    error: StateError
    for error in (
        zlib.error,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
    )
}


def _round2(x: float) -> float:
    """``round(x, 2)``, bit for bit, at a third of its cost (three deviations per reading).

    ``round(x, 2)`` is the double nearest to n / 100, n the integer nearest to the exact x * 100;
    it finds n through a decimal string (``dtoa``, ``snprintf`` and ``strtod``). For
    |x * 100| < 1e11 the float product is within 2**-16 of the exact one, so a product more
    than 0.01 from a half rounds to that same n, and ``n / 100.0`` (both exact, one correctly
    rounded division) is that same double. Near halves, at zero (whose sign ``round`` keeps),
    for huge values, NaN and infinities, ``round`` itself answers.

    >>> _round2(1.005), _round2(-0.004), _round2(2.675), _round2(1e300) == round(1e300, 2)
    (1.0, -0.0, 2.67, True)
    """
    y = x * 100.0
    if -1e11 < y < 1e11:
        n = round(y)
        if n and abs(y - n) < 0.49:
            return n / 100.0
    return round(x, 2)


@dataclass(slots=True)
class DetectorOutput:
    """What one reading produced (read-only by convention, not frozen: one is made per
    reading, and a frozen dataclass costs three times as much to build)."""

    score: ScoreRecord
    contributions: list[SignalContribution]
    predictions: list[PredictionRecord]
    #: data-quality conditions holding after this reading (stuck, dropout, pinned, clock skew)
    quality: list[QualityFinding]
    #: the health index against the device's frozen healthy reference
    health: HealthReading
    #: the fleet-learned remaining useful life, when the fleet model made a new estimate
    #: (also in ``predictions``, as the ``health_index`` prediction)
    rul: PredictionRecord | None = None


class DeviceDetector:
    """Anomaly scoring plus failure prediction for one device."""

    version = DETECTOR_VERSION

    def __init__(
        self, device_id: str, device_type: str, params: DetectorParams | None = None, seed: int = 42
    ) -> None:
        self.device_id = device_id
        self.device_type = device_type
        self.anomaly = AnomalyDetector(params, seed=seed)
        self.trends = TrendPredictor(device_type)
        self.quality = QualityMonitor(device_type)
        self.health = HealthMonitor()
        self.rebaselines = 0

    def rebaseline(self) -> None:
        """Forget the learned normal (maintenance done, a firmware change, an explicit
        re-baseline): learn it again, the healthy reference included (it is re-learned only
        then, never by drifting)."""
        self.anomaly.reset()
        self.trends = TrendPredictor(self.device_type)
        self.quality.reset()
        self.health.relearn()
        self.rebaselines += 1

    def process(
        self,
        ts: datetime,
        seq: int,
        metrics: dict[str, float | None],
        *,
        received_at: datetime | None = None,
        fleet: FleetModel | None = None,
    ) -> DetectorOutput:
        """Score one reading, update the trends and the health index, check the data's
        quality, and (with the ``fleet`` model of the device's type) estimate the remaining
        useful life."""
        result = self.anomaly.score_one(metrics, ts)
        skew = None if received_at is None else (ts - received_at).total_seconds()
        quality = self.quality.update(metrics, skew)
        # Plain records, not pydantic models: validating values this code computed cost
        # ~17 us per reading (four model_construct calls); the schemas stay the contract.
        contributions: list[SignalContribution] = []
        deviations: dict[str, float] = {}
        baselines = result.baselines
        for name, z in result.top[:3]:
            deviation = deviations[name] = _round2(z)
            value = float(metrics[name])  # type: ignore[arg-type]
            contributions.append(SignalContribution(name, value, baselines[name], deviation))
        # The health index sees the main operating mode's readings without their time-of-day
        # offsets (a pause or a standby is not a degradation; a daily load is not a drift).
        health = self.health
        profiles = self.anomaly.modes[MAIN_MODE]
        bucket = result.bucket or 0  # (ts is given: the bucket is an int)
        reading = health.last if result.mode else health.update(ts, metrics, profiles, bucket)
        score = ScoreRecord(
            self.device_id,
            self.device_type,
            ts,
            seq,
            seq,
            result.score,
            deviations,
            self.version,
            result.warming_up,
            result.in_control,
            reading.rounded,
            reading.stage,
        )
        predictions: list[PredictionRecord] = []
        rul = None
        if fleet is not None and reading.summarised and reading.index is not None:
            estimate = fleet.predict(health.history())
            if estimate is not None:
                rul = PredictionRecord(
                    self.device_id,
                    self.device_type,
                    HEALTH_METRIC,
                    ts,
                    reading.index,
                    fleet.failure_index,
                    reading.trend_per_h if reading.trend_per_h is not None else 0.0,
                    estimate.rul_h,
                    estimate.low_h,
                    estimate.high_h,
                    self.version,
                )
                predictions.append(rul)
        trends = self.trends
        if trends.signals:
            # The trends extrapolate the signals without their time-of-day offsets.
            for r in trends.update(ts, metrics, profiles, bucket):
                predictions.append(
                    PredictionRecord(
                        self.device_id,
                        self.device_type,
                        r.metric,
                        r.ts,
                        r.value,
                        r.limit,
                        r.trend_per_h,
                        r.time_to_failure_h,
                        r.lower_h,
                        r.upper_h,
                        self.version,
                    )
                )
        return DetectorOutput(score, contributions, predictions, quality, reading, rul)

    def dumps(self) -> bytes:
        """The whole state, compressed, with a version header."""
        header = f"{self.version}|river-{_RIVER}".encode()
        body = zlib.compress(pickle.dumps(self.__dict__, protocol=5), 6)
        return _MAGIC + len(header).to_bytes(2, "big") + header + body

    @classmethod
    def loads(cls, data: bytes) -> DeviceDetector:
        """Restore a detector saved by :meth:`dumps` (by this detector and River version).

        Raises :class:`StateVersionMismatch` for state of another version (or no version
        header), :class:`StateError` for bytes that do not restore.

        >>> cut = DeviceDetector("pump-0001", "infusion_pump").dumps()[:-10]
        >>> try:  # doctest: +ELLIPSIS
        ...     DeviceDetector.loads(cut)
        ... except StateError as e:
        ...     print(type(e).__name__, "|", e)
        StateError | detector state: Error -5 while decompressing data: incomplete or truncated...
        """
        with map_exceptions(UNREADABLE_STATE, "detector state"):
            if not data.startswith(_MAGIC):
                raise StateVersionMismatch("not detector state")
            size = int.from_bytes(data[4:6], "big")
            header = data[6 : 6 + size].decode()
            expected = f"{DETECTOR_VERSION}|river-{_RIVER}"
            if header != expected:
                raise StateVersionMismatch(f"state is {header}, this is {expected}")
            detector = cls.__new__(cls)
            state: dict[str, Any] = pickle.loads(zlib.decompress(data[6 + size :]))  # noqa: S301
            restore_attributes(detector, state)
        return detector
