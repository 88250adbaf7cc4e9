"""Invariants of the detectors, written once and checked on every detector."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.detection.anomaly import AnomalyDetector
from twin_stream.domain.detection.detector import DeviceDetector, StateVersionMismatch
from twin_stream.domain.detection.params import DetectorParams
from twin_stream.domain.detection.trend import TrendPredictor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIGNALS = ["line_pressure", "motor_current", "battery", "flow_rate"]


def normal_reading(rng: random.Random) -> dict[str, float | None]:
    return {
        "flow_rate": 100 + rng.gauss(0, 1),
        "line_pressure": 55 + rng.gauss(0, 2),
        "motor_current": 0.25 + rng.gauss(0, 0.01),
        "battery": 97 + rng.gauss(0, 0.3),
    }


def feed(detector: DeviceDetector, n: int, seed: int, start: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [
        detector.process(T0 + timedelta(seconds=i), i, normal_reading(rng)).score.score
        for i in range(start, start + n)
    ]


def test_saved_state_restores_to_the_same_scores() -> None:
    detector = DeviceDetector("pump-0001", "infusion_pump")
    feed(detector, 700, seed=1)
    restored = DeviceDetector.loads(detector.dumps())
    assert feed(detector, 300, seed=2, start=700) == feed(restored, 300, seed=2, start=700)


def test_state_stays_under_64_kib_per_device() -> None:
    detector = DeviceDetector("pump-0001", "infusion_pump")
    sizes = []
    for chunk in range(10):
        feed(detector, 1000, seed=chunk, start=chunk * 1000)
        sizes.append(len(detector.dumps()))
    assert max(sizes) < 64 * 1024, sizes
    assert sizes[-1] < sizes[2] * 1.5  # bounded: it does not keep growing with data


def test_state_from_another_version_is_refused() -> None:
    data = DeviceDetector("pump-0001", "infusion_pump").dumps()
    with pytest.raises(StateVersionMismatch):
        DeviceDetector.loads(data.replace(b"ts-detector/1", b"ts-detector/0"))


def test_same_seed_same_scores_and_picklable() -> None:
    a, b = (
        DeviceDetector("pump-0001", "infusion_pump"),
        DeviceDetector("pump-0001", "infusion_pump"),
    )
    assert feed(a, 400, seed=3) == feed(b, 400, seed=3)
    pickle.loads(pickle.dumps(a.anomaly))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.none(), min_size=1, max_size=300))
def test_scores_are_always_in_unit_interval(values: list[float | None]) -> None:
    detector = AnomalyDetector()
    for v in values:
        result = detector.score_one({"x": v, "y": None if v is None else v * 0.5})
        assert 0.0 <= result.score <= 1.0


def test_no_score_during_warm_up() -> None:
    detector = AnomalyDetector()
    params = DetectorParams()
    scores = [detector.score_one({"x": float(i % 2) * 100}).score for i in range(params.warmup)]
    assert set(scores) == {0.0}


def test_a_spike_scores_high_and_is_not_learned_as_normal() -> None:
    detector = AnomalyDetector()
    rng = random.Random(4)
    for _ in range(500):
        detector.score_one({"x": 10 + rng.gauss(0, 0.5)})
    center = detector.baselines["x"].center
    spike = detector.score_one({"x": 30.0})
    assert spike.score > 0.9999
    assert abs(detector.baselines["x"].center - center) < 0.1  # protection
    assert detector.score_one({"x": 10.2}).score < 0.99


def test_a_new_normal_is_learned_without_an_alert_storm() -> None:
    detector = DeviceDetector("pump-0001", "infusion_pump")
    policy = AlertPolicy("pump-0001", "infusion_pump")
    rng = random.Random(5)
    alerts = []
    for i in range(3000):
        reading = normal_reading(rng)
        if i >= 1000:  # after maintenance, the motor runs at a new, lower current
            reading["motor_current"] = 0.18 + rng.gauss(0, 0.01)
        out = detector.process(T0 + timedelta(seconds=i), i, reading)
        alerts += policy.on_score(T0 + timedelta(seconds=i), i, out.score.score, out.contributions)
    after_maintenance = [
        a for a in alerts if a.state == "open" and a.opened_at >= T0 + timedelta(seconds=1000)
    ]
    assert len(after_maintenance) <= 1
    assert all(a.severity == "info" for a in after_maintenance)  # lower current: not failing
    assert detector.anomaly.baselines["motor_current"].center < 0.2  # the new normal
    late = feed(detector, 200, seed=6, start=3000)  # and the old normal is now unusual
    assert max(late) > 0.99
    assert sum(detector.anomaly.baselines[s].drifts for s in SIGNALS) >= 1


def test_trend_prediction_brackets_the_true_failure_time() -> None:
    predictor = TrendPredictor("ventilator")
    reports = []
    slope_per_h = 20.0  # filter_dp rises 20 Pa/h after 6 h: reaches 600 from 170 in 21.5 h
    for i in range(60 * 20):
        hours = i / 60
        dp = 170 + max(0.0, hours - 6) * slope_per_h + random.Random(i).gauss(0, 4)
        reports += [
            r
            for r in predictor.update(T0 + timedelta(minutes=i), {"filter_dp": dp})
            if r.metric == "filter_dp"
        ]
    last = reports[-1]
    true_ttf = (600 - (170 + (20 - 6) * slope_per_h)) / slope_per_h
    assert last.time_to_failure_h is not None
    assert last.lower_h is not None and last.upper_h is not None
    assert last.lower_h - 0.5 <= true_ttf <= last.upper_h + 0.5
    assert abs(last.trend_per_h - slope_per_h) < 3


def test_a_flat_noisy_signal_predicts_no_failure() -> None:
    predictor = TrendPredictor("mri_chiller")
    rng = random.Random(7)
    reports = []
    for i in range(60 * 48):
        reports += predictor.update(
            T0 + timedelta(minutes=i), {"compressor_temp": 60 + rng.gauss(0, 1.5)}
        )
    assert reports and all(r.time_to_failure_h is None for r in reports)
