"""How alerts read: durations coarse enough to change only when it matters, values in the units
of :data:`~twin_stream.domain.devices.METRICS_BY_TYPE`, and each condition's text."""

from __future__ import annotations

from collections.abc import Sequence

from twin_stream.domain.devices import METRICS_BY_TYPE
from twin_stream.domain.events import ContributionLike, Prediction, PredictionRecord

__all__ = ["anomaly_text", "degradation_text", "duration", "prediction_text", "quantity"]


def duration(hours: float | None) -> str:
    """Hours as people read them, coarse enough that the text changes only when it matters:
    whole hours from 10 h, half hours from 1 h, five minutes below.

    >>> duration(30.0), duration(19.4), duration(3.4), duration(0.2), duration(None)
    ('30 h', '19 h', '3.5 h', '10 min', '?')
    """
    if hours is None:
        return "?"
    halves = round(hours * 2) / 2
    if halves >= 10:
        return f"{hours:.0f} h"
    if halves >= 1:
        return f"{halves:.1f} h"
    minutes = hours * 60
    return "< 5 min" if minutes < 2.5 else f"{5 * round(minutes / 5):.0f} min"


def _band(lower_h: float | None, upper_h: float | None) -> str:
    """A time to failure's uncertainty band, if the prediction has one."""
    return f" ({duration(lower_h)} to {duration(upper_h)})" if lower_h is not None else ""


def quantity(device_type: str, metric: str, value: float) -> str:
    """A value with its unit (none for dimensionless or unknown signals).

    >>> quantity("infusion_pump", "motor_current", 0.4213), quantity("skab", "Volume", 3.0)
    ('0.4213 A', '3')
    """
    spec = METRICS_BY_TYPE.get(device_type, {}).get(metric)
    unit = spec.unit if spec is not None and spec.unit != "1" else ""
    return f"{value:.4g} {unit}" if unit else f"{value:.4g}"


def anomaly_text(device_type: str, contributions: Sequence[ContributionLike]) -> str:
    """An anomaly's text: its top signals against their baselines."""
    return "anomaly: " + ", ".join(
        f"{x.metric} {quantity(device_type, x.metric, x.value)} vs baseline "
        f"{quantity(device_type, x.metric, x.baseline)} ({x.deviation:+.1f} sd)"
        for x in contributions
    )


def prediction_text(device_type: str, pr: PredictionRecord | Prediction) -> str:
    """A predicted failure's text: the signal, its trend, its limit and the time to it."""
    spec = METRICS_BY_TYPE.get(device_type, {}).get(pr.metric)
    unit = f" {spec.unit}" if spec is not None and spec.unit != "1" else ""
    return (
        f"predicted failure: {pr.metric} {quantity(device_type, pr.metric, pr.value)} trending "
        f"{pr.trend_per_h:+.3g}{unit}/h; limit {quantity(device_type, pr.metric, pr.limit)} in "
        f"{duration(pr.time_to_failure_h)}{_band(pr.lower_h, pr.upper_h)}"
    )


def degradation_text(
    index: float | None,
    trend_per_h: float | None,
    drivers: Sequence[tuple[str, float]],
    shown_ttf: float | None,
    rul: PredictionRecord | None,
) -> str:
    """A degradation's text: the health index, the signals that moved most, and the remaining
    useful life shown (``shown_ttf``) with the band of the fleet-learned ``rul``."""
    moved_most = ", ".join(f"{name} {z:+.1f} sd" for name, z in drivers[:3])
    trend = f" trending {trend_per_h:+.3g}/h" if trend_per_h is not None else ""
    text = (
        f"degradation: health index {index:.3g}{trend} against the healthy reference"
        if index is not None
        else "degradation: health index away from the healthy reference"
    )
    if moved_most:
        text += f"; moved most: {moved_most}"
    if shown_ttf is not None and rul is not None:
        band = _band(rul.lower_h, rul.upper_h)
        text += f"; remaining useful life {duration(shown_ttf)}{band} (fleet-learned)"
    return text
