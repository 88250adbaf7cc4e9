"""The one documented parameter set of the detectors.

Every device, every NAB file and every SKAB file runs with these same values: nothing is tuned
per file or per device. Changing a value changes ``DETECTOR_VERSION``. Each value says where it
comes from; "chosen here" values were set once on ``../shared/datasets`` (NAB and SKAB subsets)
and the simulated fleet, and are measured on data the project never saw (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twin_stream.domain.detection.state import RestoresByAttribute

__all__ = ["DETECTOR_VERSION", "DetectorParams"]

DETECTOR_VERSION: Final = "ts-detector/4"


@dataclass(frozen=True)
class DetectorParams(RestoresByAttribute):
    """Per-signal baselines, a streaming PCA (T² and Q), and the anomaly likelihood."""

    #: Readings before any score can reach an alert: the baselines must first see normal data.
    #: 150 readings is 2.5 h at one a minute; NAB's probation is 15 % of a file (<= 750 rows),
    #: so the warm-up ends inside it; SKAB's protocol gives 400 training rows per file.
    warmup: int = 150
    #: Memory of a signal's baseline (EW mean and variance): about 1/fading = 100 readings
    #: (the "alpha = 0.01" of classic EWMA control charts; Montgomery, SQC, ch. 9).
    fading: float = 0.01
    #: Protection: a reading beyond this many standard deviations teaches the baseline only as
    #: much as one at the limit would, so an anomaly does not become the new normal (a
    #: winsorised EWMA; 3 sd keeps 99.7 % of normal readings untouched). Chosen by
    #: cross-validation (BENCHMARKS.md, "Detection v4"): 3.0 against 3.5 and 4.0 raised NAB's
    #: leave-one-category-out score and SKAB's file-split F1, the fleet's figures about the
    #: same. A state out of the limits for ``freeze_max`` readings is then learned unprotected
    #: (``AnomalyDetector.adopting``).
    protect_z: float = 3.0
    #: Range novelty needs a value this many standard deviations from the baseline as well as
    #: beyond the whole learned range: healthy noise makes new extremes at 3 sd too.
    novelty_z: float = 4.0
    #: Scale floor, relative to the signal's level: a flat line is not infinitely sensitive.
    min_relative_scale: float = 1e-3
    #: Seasonal baseline: 24 time-of-day buckets (one an hour of the device's clock), each with
    #: its own EW offset from the signal's mean (DETECTION-NOTES, "Seasonality": 24-48 buckets).
    season_buckets: int = 24
    #: A bucket is used once one visit (a day) has taught it ...
    season_min_count: int = 1
    #: ... and only while the seasonal profile explains the signal: its residual variance is
    #: below this share of the plain variance (learned from the data, not configured per file).
    season_gain: float = 0.7
    #: Memory of a bucket's offset: 10 visits (10 days of daily cycles).
    season_days: int = 10
    #: Range novelty: a value beyond every value seen so far by more than this share of the
    #: range scores 1.0 ("spatial anomaly" of NAB's Numenta detector, SPATIAL_TOLERANCE = 0.05).
    range_tolerance: float = 0.05
    #: Streaming PCA: components kept to explain this share of the variance (DETECTION-NOTES:
    #: 85-90 %), re-decomposed every ``pca_refresh`` readings (a decomposition of 4 signals
    #: costs ~27 us with its fold of the pending readings: ~0.5 us a reading; every 100
    #: readings missed one of the 51 failures of the fleet's seed 1, so not that).
    pca_variance: float = 0.9
    pca_refresh: int = 50
    #: The covariance learns only while T² and Q are inside their limits at this level (SKAB's
    #: T²+Q uses alpha = 0.01), and for at most ``freeze_max`` readings in a row, after which an
    #: out-of-limit state is taken as the new normal.
    pca_alpha: float = 0.01
    freeze_max: int = 500
    #: Anomaly likelihood (Ahmad et al. 2017, NAB's HTM detector): the mean of the last
    #: ``likelihood_short`` raw scores against the mean and spread of the last
    #: ``likelihood_long`` ones. NAB's values: short window 10, learning period 288, and a
    #: historic window of 8640; 2000 keeps a device's state small (bounded, < 16 KB) and still
    #: spans a week of 5-minute data.
    likelihood_short: int = 10
    likelihood_long: int = 2000
    likelihood_learn: int = 300
    #: Floors of the raw-score distribution, from NAB's anomaly_likelihood.py (mean 0.03,
    #: variance 0.0003): a detector that has seen only calm data is not infinitely sensitive.
    likelihood_min_mean: float = 0.03
    likelihood_min_var: float = 0.0003
    #: Learned operating modes (pause, standby): a reading's mode is the set of its signals that
    #: are "off" (at most this share of the signal's usual magnitude). Each mode has baselines of
    #: its own; at most ``max_modes`` modes per device, the rest share the main mode.
    mode_off_share: float = 0.05
    max_modes: int = 4
