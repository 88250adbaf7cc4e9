"""The detector (v2): saved state, bounded size, versions, scores in [0, 1], and what it has to
get right on device data: seasonality, healthy data, broken correlations, operating modes,
re-baselining after maintenance, and failure prediction."""

from __future__ import annotations

import copy
import math
import pickle
import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_stream.domain.alerting import AlertPolicyParams
from twin_stream.domain.detection.anomaly import AnomalyDetector, ReadingScore
from twin_stream.domain.detection.detector import DeviceDetector, StateVersionMismatch
from twin_stream.domain.detection.multivariate import PCAScore
from twin_stream.domain.detection.params import DETECTOR_VERSION, DetectorParams
from twin_stream.domain.detection.trend import TrendPredictor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIGNALS = ["line_pressure", "motor_current", "battery", "flow_rate"]


def normal_reading(rng: random.Random, current: float = 0.25) -> dict[str, float | None]:
    return {
        "flow_rate": 100 + rng.gauss(0, 1),
        "line_pressure": 55 + rng.gauss(0, 2),
        "motor_current": current + rng.gauss(0, 0.01),
        "battery": 97 + rng.gauss(0, 0.3),
    }


def feed(detector: DeviceDetector, n: int, seed: int, start: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [
        detector.process(T0 + timedelta(seconds=i), i, normal_reading(rng)).score.score
        for i in range(start, start + n)
    ]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- state ----------------------------------------------------------------------------------------


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
    assert sizes[-1] < sizes[2] * 1.5, sizes  # bounded: it does not keep growing with data


def test_state_from_another_version_is_refused() -> None:
    assert DETECTOR_VERSION == "ts-detector/4"
    data = DeviceDetector("pump-0001", "infusion_pump").dumps()
    assert b"ts-detector/4" in data
    DeviceDetector.loads(data)  # its own state loads
    for other in (b"ts-detector/3", b"ts-detector/5"):
        with pytest.raises(StateVersionMismatch):
            DeviceDetector.loads(data.replace(b"ts-detector/4", other))
    with pytest.raises(StateVersionMismatch):
        DeviceDetector.loads(b"not a detector")


def test_same_seed_same_scores_and_picklable() -> None:
    a, b = (
        DeviceDetector("pump-0001", "infusion_pump"),
        DeviceDetector("pump-0001", "infusion_pump"),
    )
    assert feed(a, 400, seed=3) == feed(b, 400, seed=3)
    pickle.loads(pickle.dumps(a.anomaly))


# -- scores ---------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.none(), min_size=1, max_size=300))
def test_scores_are_always_in_unit_interval(values: list[float | None]) -> None:
    detector = AnomalyDetector()
    for i, v in enumerate(values):
        ts = T0 + timedelta(minutes=7 * i)  # through every time-of-day bucket
        result = detector.score_one({"x": v, "y": None if v is None else v * 0.5}, ts)
        assert 0.0 <= result.score <= 1.0
        assert all(math.isfinite(z) for _, z in result.top)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e3, 1e3, allow_nan=False), st.floats(-1e3, 1e3, allow_nan=False)),
        min_size=160,
        max_size=400,
    )
)
def test_scores_after_the_warm_up_are_in_unit_interval(values: list[tuple[float, float]]) -> None:
    detector = AnomalyDetector()
    for x, y in values:
        result = detector.score_one({"x": x, "y": y, "z": x - y})
        assert 0.0 <= result.score <= 1.0


def test_no_score_during_warm_up() -> None:
    detector = AnomalyDetector()
    params = DetectorParams()
    results = [detector.score_one({"x": float(i % 2) * 100}) for i in range(params.warmup)]
    assert {r.score for r in results} == {0.0}
    assert all(r.warming_up for r in results)
    assert not detector.score_one({"x": 0.0}).warming_up


def test_a_spike_scores_high_and_is_not_learned_as_normal() -> None:
    detector = AnomalyDetector()
    rng = random.Random(4)
    for _ in range(500):
        detector.score_one({"x": 10 + rng.gauss(0, 0.5)})
    baseline = detector.modes[""]["x"]
    center = baseline.center()
    spike = detector.score_one({"x": 30.0})
    assert spike.score == 1.0 and spike.novel == ("x",)
    assert spike.top[0][0] == "x" and spike.top[0][1] > 30
    assert abs(baseline.center() - center) < 0.1  # protection
    assert detector.score_one({"x": 10.2}).score < 0.99


def test_healthy_multivariate_data_scores_near_zero() -> None:
    detector = DeviceDetector("pump-0001", "infusion_pump")
    rng = random.Random(20)
    outs = [
        detector.process(T0 + timedelta(seconds=i), i, normal_reading(rng)).score
        for i in range(3000)
    ]
    warmup = DetectorParams().warmup
    assert all(o.warming_up and o.score == 0.0 for o in outs[:warmup])
    assert not any(o.warming_up for o in outs[warmup:])
    scores = [o.score for o in outs[warmup:]]
    # The score is NAB's log-scaled likelihood: by construction about 1 % of healthy readings
    # score 0.4 (likelihood 0.99) and about 1 in 300 score 0.5; "near 0" is the bulk of them.
    assert statistics.median(scores) < 0.1
    assert quantile(scores, 0.95) < 0.3
    assert quantile(scores, 0.99) < 0.5
    assert sum(s >= 0.5 for s in scores) / len(scores) < 0.01


# -- seasonality ----------------------------------------------------------------------------------

CHILLER_STEP = timedelta(minutes=5)


def chiller_temp(ts: datetime, rng: random.Random) -> float:
    """A chiller's compressor: 20 ± 0.3, warming up by +5 from 06:00 to 09:00 every morning."""
    return 20 + rng.gauss(0, 0.3) + (5.0 if 6 <= ts.hour < 9 else 0.0)


def test_a_daily_morning_warm_up_is_learned_but_the_same_rise_in_the_afternoon_is_not() -> None:
    detector, rng = AnomalyDetector(), random.Random(0)
    morning: dict[int, list[float]] = {}
    for i in range(288 * 9):  # days 1-9, a reading every 5 min
        ts = T0 + i * CHILLER_STEP
        result = detector.score_one({"compressor_temp": chiller_temp(ts, rng)}, ts)
        if 6 <= ts.hour < 9:
            morning.setdefault(ts.day, []).append(result.score)
    baseline = detector.modes[""]["compressor_temp"]
    assert baseline.center(7) == pytest.approx(25.0, abs=1.0)  # the morning's own baseline
    assert baseline.center(15) == pytest.approx(20.0, abs=1.0)
    assert max(morning[9]) < 0.5, morning[9]
    assert statistics.median(morning[9]) < 0.2

    # Day 10: the normal morning, and (on a copy) the same +5 at 15:00 instead.
    afternoon, copy_rng = copy.deepcopy(detector), random.Random(1)
    day10 = [T0 + i * CHILLER_STEP for i in range(288 * 9, 288 * 10)]
    normal = [
        detector.score_one({"compressor_temp": chiller_temp(ts, copy_rng)}, ts).score
        for ts in day10
        if ts.hour < 12
    ]
    assert max(normal[6 * 12 : 9 * 12]) < 0.5
    rng = random.Random(1)
    late: list[ReadingScore] = []
    for ts in day10:
        value = chiller_temp(ts, rng) + (5.0 if 15 <= ts.hour < 16 else 0.0)
        result = afternoon.score_one({"compressor_temp": value}, ts)
        if 15 <= ts.hour < 16:
            late.append(result)
    assert max(r.score for r in late) >= 0.5 or any(r.novel for r in late)
    # an hour of it stays above the alert policy's raise threshold all through
    assert min(r.score for r in late[-4:]) >= AlertPolicyParams().anomaly_raise
    assert late[-1].top[0][0] == "compressor_temp" and late[-1].top[0][1] > 3


# -- multivariate ---------------------------------------------------------------------------------


def correlated(rng: random.Random, broken: bool = False) -> dict[str, float | None]:
    """Flow and motor current move together (the load); pressure and battery do not."""
    u = rng.gauss(0, 1)
    return {
        "flow_rate": 100 + 5 * u + rng.gauss(0, 0.5),
        "motor_current": 0.25 + 0.0125 * (-u if broken else u) + rng.gauss(0, 0.00125),
        "line_pressure": 55 + rng.gauss(0, 2),
        "battery": 97 + rng.gauss(0, 0.3),
    }


def test_a_broken_correlation_is_flagged_by_q_with_the_right_signals_on_top() -> None:
    detector, rng = AnomalyDetector(), random.Random(30)
    for i in range(1500):
        detector.score_one(correlated(rng), T0 + timedelta(seconds=i))
    ts = T0 + timedelta(seconds=1500)
    bucket = ts.hour
    baselines = detector.modes[""]
    # 1.5 sd up in flow with 1.5 sd *down* in current: each well inside its own range.
    broken: dict[str, float | None] = {
        "flow_rate": 107.5,
        "motor_current": 0.25 - 0.01875,
        "line_pressure": 55.0,
        "battery": 97.0,
    }
    usual = {**broken, "motor_current": 0.25 + 0.01875}
    for name, value in broken.items():
        assert value is not None
        assert baselines[name].lo < value < baselines[name].hi
        assert not baselines[name].novel(value)
    pca = detector.pca
    assert pca is not None

    def pca_score(reading: dict[str, float | None]) -> PCAScore:
        return pca.score([baselines[n].z(float(reading[n] or 0), bucket) for n in detector.names])

    bad, good = pca_score(broken), pca_score(usual)
    assert good.p_value > 0.1 and good.top == []
    assert bad.p_value < 1e-6
    assert bad.q > 100 * max(good.q, 1e-3)  # off the normal subspace ...
    assert bad.t2 < good.t2  # ... not far along it
    assert {name for name, _ in bad.top[:2]} == {"flow_rate", "motor_current"}

    results = [detector.score_one(broken, ts + timedelta(seconds=j)) for j in range(12)]
    assert not any(r.novel for r in results)
    assert max(r.score for r in results) >= 0.5
    assert {name for name, _ in results[-1].top[:2]} == {"flow_rate", "motor_current"}


def test_learned_modes_a_pause_seen_a_few_times_is_normal() -> None:
    detector, rng = AnomalyDetector(), random.Random(40)
    i = 0
    pauses: list[list[ReadingScore]] = []
    running: list[list[ReadingScore]] = []
    for _ in range(10):
        for phase, n in (("running", 300), ("paused", 60)):
            results = []
            for _ in range(n):
                if phase == "running":
                    m: dict[str, float | None] = {
                        "flow_rate": 100 + rng.gauss(0, 1),
                        "motor_current": 0.25 + rng.gauss(0, 0.01),
                    }
                else:
                    m = {
                        "flow_rate": abs(rng.gauss(0, 0.05)),
                        "motor_current": 0.03 + rng.gauss(0, 0.002),
                    }
                results.append(detector.score_one(m, T0 + timedelta(seconds=i)))
                i += 1
            (running if phase == "running" else pauses).append(results)
    run_modes = {r.mode for period in running for r in period}
    pause_modes = {r.mode for period in pauses for r in period[1:]}
    assert run_modes == {""} and pause_modes == {"flow_rate"}  # flow is "off" in a pause
    assert set(detector.modes) == {"", "flow_rate"}
    for period in pauses[3:]:  # seen three times: a pause is normal
        assert statistics.median(r.score for r in period) < 0.2
        assert sum(r.score >= 0.5 for r in period) <= 6  # noise, as in a running period
    late_pauses = [r.score for period in pauses[3:] for r in period]
    assert sum(s >= 0.5 for s in late_pauses) / len(late_pauses) < 0.05
    # the running mode's baselines were not dragged towards the pause
    assert detector.modes[""]["flow_rate"].center() == pytest.approx(100, abs=1)
    assert detector.modes[""]["motor_current"].center() == pytest.approx(0.25, abs=0.01)
    assert detector.modes["flow_rate"]["motor_current"].center() == pytest.approx(0.03, abs=0.005)


# -- a new normal ---------------------------------------------------------------------------------


def test_rebaseline_learns_a_step_after_maintenance_as_the_new_normal() -> None:
    detector, rng = DeviceDetector("pump-0001", "infusion_pump"), random.Random(50)
    for i in range(1000):
        detector.process(T0 + timedelta(seconds=i), i, normal_reading(rng))
    untouched = copy.deepcopy(detector)
    detector.rebaseline()
    assert detector.rebaselines == 1 and detector.anomaly.count == 0
    outs = [
        detector.process(T0 + timedelta(seconds=i), i, normal_reading(rng, current=0.32)).score
        for i in range(1000, 2500)
    ]
    warmup = DetectorParams().warmup
    assert all(o.warming_up and o.score == 0.0 for o in outs[:warmup])
    scores = [o.score for o in outs[warmup:]]
    assert statistics.median(scores) < 0.1
    assert quantile(scores, 0.95) < 0.3
    assert detector.anomaly.modes[""]["motor_current"].center() == pytest.approx(0.32, abs=0.005)
    # without the re-baseline, the same step is an anomaly
    other = random.Random(51)
    step = [
        untouched.process(T0 + timedelta(seconds=i), i, normal_reading(other, 0.32)).score.score
        for i in range(1000, 1020)
    ]
    assert step[0] == 1.0 and max(step[1:]) >= 0.5


def test_a_permanent_step_without_maintenance_becomes_the_new_normal() -> None:
    detector, rng = DeviceDetector("pump-0001", "infusion_pump"), random.Random(5)
    scores = []
    for i in range(3000):
        reading = normal_reading(rng, current=0.25 if i < 1000 else 0.18)
        scores.append(detector.process(T0 + timedelta(seconds=i), i, reading).score.score)
    assert scores[1000] == 1.0  # the step itself
    assert quantile(scores[2000:], 0.99) < 0.5  # learned: no alert storm
    assert detector.anomaly.modes[""]["motor_current"].center() < 0.2  # the new normal


# -- failure prediction ---------------------------------------------------------------------------


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


def test_detector_records_serialise_to_the_event_schemas() -> None:
    """The hot path builds plain records; the pydantic schemas stay the contract."""
    from dataclasses import asdict

    from twin_stream.domain.events import AnomalyScore, Contribution

    detector = DeviceDetector("pump-0001", "infusion_pump")
    feed(detector, 400, seed=5)
    out = detector.process(T0, 400, {**normal_reading(random.Random(6)), "motor_current": 0.9})
    parsed = AnomalyScore.model_validate_json(out.score.to_json())
    assert parsed.model_dump() == asdict(out.score)
    assert parsed.contributions and parsed.contributions["motor_current"] > 4
    for c in out.contributions:
        assert Contribution.model_validate(asdict(c)).metric == c.metric
