"""Online anomaly detection and failure prediction (pure, no I/O).

* ``params``: the one documented parameter set and the detector's version;
* ``baseline``: protected per-signal baselines with a time-of-day profile;
* ``multivariate``: the streaming PCA (Hotelling's T² and Q);
* ``likelihood``: the anomaly likelihood, the one calibrated score;
* ``anomaly``: the per-reading anomaly detector (modes, novelty, in-control state);
* ``quality``: data-quality checks (stuck, dropout, pinned, clock skew);
* ``trend``: failure prediction by each degrading signal's trend;
* ``detector``: :class:`DeviceDetector`, all of the above for one device;
* ``state``: restoring saved state so that it runs as fast as new state.
"""

from __future__ import annotations

from twin_stream.domain.detection.detector import (
    DetectorOutput,
    DeviceDetector,
    StateVersionMismatch,
)
from twin_stream.domain.detection.params import DETECTOR_VERSION, DetectorParams
from twin_stream.domain.detection.quality import QualityFinding, QualityIssue
from twin_stream.domain.detection.trend import TrendReport

__all__ = [
    "DETECTOR_VERSION",
    "DetectorOutput",
    "DetectorParams",
    "DeviceDetector",
    "QualityFinding",
    "QualityIssue",
    "StateVersionMismatch",
    "TrendReport",
]
