"""The one documented parameter set of the detectors.

Every device, every NAB file and every SKAB file runs with these same values: nothing is tuned
per file or per device. Changing a value changes ``DETECTOR_VERSION``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DETECTOR_VERSION", "DetectorParams"]

DETECTOR_VERSION: Final = "ts-detector/1"


@dataclass(frozen=True)
class DetectorParams:
    """Anomaly scoring: per-signal baselines, a small multivariate model, calibration."""

    #: Readings before any score can reach an alert: the baselines must first see normal data.
    warmup: int = 150
    #: Memory of a signal's baseline (EW mean and variance): about 1/fading readings.
    fading: float = 0.01
    #: Memory right after a drift (ADWIN): the new normal is learned about 10x faster.
    relearn_fading: float = 0.1
    relearn_readings: int = 60
    #: Protection: a reading beyond this many standard deviations teaches the baseline only as
    #: much as one at the limit would, so anomalies are not learned as normal.
    protect_z: float = 4.0
    #: ADWIN's confidence (Bifet & Gavalda 2007); River's default.
    adwin_delta: float = 0.002
    #: Scale floor, relative to the signal's level: a flat line is not infinitely sensitive.
    min_relative_scale: float = 1e-3
    #: The multivariate model: River's HalfSpaceTrees, kept small (10 trees of height 5:
    #: ~25 KB pickled, ~35 us per reading here) instead of its costly defaults.
    hst_trees: int = 10
    hst_height: int = 5
    hst_window: int = 100
    #: Onsets: a run of anomalous readings is one alarm. After a reading scores >= onset_enter,
    #: later readings are damped (x0.5) until onset_quiet readings in a row score below
    #: onset_leave, and at least onset_gap readings pass before the next onset.
    onset_enter: float = 0.99
    onset_leave: float = 0.9
    onset_quiet: int = 30
    onset_gap: int = 100
