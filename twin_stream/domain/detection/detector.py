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
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from typing import Any, Final

from twin_stream.domain.detection.anomaly import AnomalyDetector
from twin_stream.domain.detection.params import DETECTOR_VERSION, DetectorParams
from twin_stream.domain.detection.quality import QualityFinding, QualityMonitor
from twin_stream.domain.detection.trend import TrendPredictor
from twin_stream.domain.events import Prediction, ScoreRecord, SignalContribution
from twin_stream.errors import StateError, StateVersionMismatch, map_exceptions

# StateVersionMismatch lives in twin_stream.errors; it is re-exported here, where it is raised.
__all__ = ["UNREADABLE_STATE", "DetectorOutput", "DeviceDetector", "StateVersionMismatch"]

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


@dataclass(frozen=True)
class DetectorOutput:
    score: ScoreRecord
    contributions: list[SignalContribution]
    predictions: list[Prediction]
    #: data-quality conditions holding after this reading (stuck, dropout, pinned, clock skew)
    quality: list[QualityFinding] = field(default_factory=list)


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
        self.rebaselines = 0

    def rebaseline(self) -> None:
        """Forget the learned normal (maintenance done, a firmware change): learn it again."""
        self.anomaly.reset()
        self.trends = TrendPredictor(self.device_type)
        self.quality.reset()
        self.rebaselines += 1

    def process(
        self,
        ts: datetime,
        seq: int,
        metrics: dict[str, float | None],
        *,
        received_at: datetime | None = None,
    ) -> DetectorOutput:
        """Score one reading, update the trends and check the data's quality."""
        result = self.anomaly.score_one(metrics, ts)
        skew = None if received_at is None else (ts - received_at).total_seconds()
        quality = self.quality.update(metrics, skew)
        # Plain records, not pydantic models: validating values this code computed cost
        # ~17 us per reading (four model_construct calls); the schemas stay the contract.
        contributions = [
            SignalContribution(name, float(metrics[name]), result.baselines[name], round(z, 2))  # type: ignore[arg-type]
            for name, z in result.top[:3]
        ]
        score = ScoreRecord(
            self.device_id,
            self.device_type,
            ts,
            seq,
            seq,
            result.score,
            {c.metric: c.deviation for c in contributions},
            self.version,
            result.warming_up,
            result.in_control,
        )
        predictions = [
            Prediction(
                device_id=self.device_id,
                device_type=self.device_type,
                metric=r.metric,
                ts=r.ts,
                value=r.value,
                limit=r.limit,
                trend_per_h=r.trend_per_h,
                time_to_failure_h=r.time_to_failure_h,
                lower_h=r.lower_h,
                upper_h=r.upper_h,
                detector_version=self.version,
            )
            for r in (
                self.trends.update(ts, self.anomaly.deseasonalized(metrics, ts))
                if self.trends.signals
                else ()
            )
        ]
        return DetectorOutput(score, contributions, predictions, quality)

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
            detector.__dict__.update(state)
        return detector
