"""The one documented parameter set of the detectors (:class:`DetectorParams`) and of the
healthy reference and its health index (:class:`HealthParams`).

Every device, every NAB file and every SKAB file runs with these same values: nothing is tuned
per file or per device. Changing a value changes ``DETECTOR_VERSION``. Each value says where it
comes from; "chosen here" values were set once on ``../shared/datasets`` (NAB and SKAB subsets)
and the simulated fleet, and are measured on data the project never saw (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twin_stream.domain.detection.state import RestoresByAttribute

__all__ = ["DETECTOR_VERSION", "DetectorParams", "HealthParams"]

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


@dataclass(frozen=True)
class HealthParams(RestoresByAttribute):
    """The one documented parameter set of the healthy reference and the health index.

    The values marked "CV" were chosen by the two-way cross-validation of ``eval rul`` on
    C-MAPSS FD003 (odd engines against even, and back; BENCHMARKS.md), the only place they
    were tuned, and are the same for every device type.
    """

    #: Learning period: whichever ends first of this many readings (SKAB's protocol: the first
    #: 400 rows are the normal) ...
    reference_readings: int = 400
    #: ... or this much of the device's own clock: its first day (a daily cycle seen once) ...
    reference_hours: float = 24.0
    #: ... but never fewer readings than this: a mean and sd from fewer are too rough
    #: (20 readings give an sd within ~30 % at 95 %).
    min_reference: int = 20
    #: Scale floor relative to a signal's level, as the adaptive baselines have
    #: (DetectorParams.min_relative_scale), and an absolute one for a level near zero.
    min_relative_scale: float = 1e-3
    min_scale: float = 1e-9
    #: Memory of the recent window (EW mean), in readings (CV: 10, 20, 40 tried).
    window: int = 10
    #: The index (and its limits, trend and history) is computed once per bucket of readings:
    #: the numpy work once per 10 readings keeps the per-reading cost to a multiply-add per
    #: signal.
    bucket_readings: int = 10
    #: Warning limit: the chi²(p) tail at this level on the T² scale of the window mean (the
    #: 1-in-1000 of a multivariate control chart's "3 sigma"; CV: 1e-2, 1e-3, 1e-4 tried).
    alpha: float = 1e-3
    #: ... times this factor: a page needs a drift of practical size, this many times as far
    #: as the statistical limit (CV: 1, 1.5, 2, 2.5, 3, 3.5 tried; 3 is the smallest with at
    #: most 5 % of either half's engines paged more than 150 h before failure).
    warning_factor: float = 3.0
    #: Critical limit: this many times as far as the warning limit (the drift twice as large).
    critical_factor: float = 2.0
    #: A departure is sustained when this many buckets in a row are beyond the limit
    #: (CV: 2, 3, 5 tried).
    sustain_buckets: int = 3
    #: The index trend (per hour) is the least-squares slope over this many buckets.
    trend_buckets: int = 12
    #: At most this many (hours, index) points of history are kept (~4 KB pickled).
    history_points: int = 200
    #: The signals named as drivers.
    drivers: int = 3
