"""Invariants of every stateful model, written once and checked on each of them.

In the spirit of River's ``river/checks`` (one list of generic checks) and
``river/test_estimators.py`` (one parametrised test over every estimator): each model is
described by a :class:`Case` (how to make it, how to feed it ``n`` steps of seeded synthetic
input and get its outputs back as plain, comparable values, and how big its state is), and every
check in :data:`CHECKS` runs on every case.

The checks:

* pure scoring: a score-without-learning method (``SignalBaseline.z``, ``StreamingPCA.score``)
  gives the same result twice and leaves the pickled state unchanged; for every model, two deep
  copies fed the same next input give identical outputs (deterministic given the state);
* a pickle round trip (and the model's own ``dumps``/``loads``, where it has one) changes
  nothing: fed N steps, saved, restored, fed M more, both give identical outputs;
* deterministic for a seed: two fresh models fed the same seeded input agree;
* bounded size: the state after 5,000 steps is < 1.5x the state once the model's windows are
  full, and under 64 KiB (the per-device budget of a worker).
"""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections.abc import Callable
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twin_stream.domain.alerting import AlertPolicy
from twin_stream.domain.detection.anomaly import AnomalyDetector
from twin_stream.domain.detection.baseline import SignalBaseline
from twin_stream.domain.detection.detector import DeviceDetector
from twin_stream.domain.detection.likelihood import AnomalyLikelihood
from twin_stream.domain.detection.multivariate import StreamingPCA
from twin_stream.domain.detection.params import DetectorParams
from twin_stream.domain.detection.trend import TrendPredictor
from twin_stream.domain.events import Contribution, Prediction
from twin_stream.domain.monitor import DeviceMonitor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARAMS = DetectorParams()
KIB = 1024
#: Steps after which the size is measured: the reference, and much later.
SIZE_EARLY, SIZE_LATE = 1000, 5000
#: Models holding the anomaly likelihood keep its last ``likelihood_long`` (2,000) raw scores:
#: their state grows until that window is full, by design. Their reference is taken once it is.
SIZE_EARLY_WINDOWED = PARAMS.likelihood_long + 500


def plain(value: Any) -> Any:
    """Outputs as plain values: dataclasses and pydantic models become tuples and dicts."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return plain(astuple(value))
    if isinstance(value, list | tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def pickled(model: Any) -> int:
    return len(pickle.dumps(model, protocol=5))


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], Any]
    #: feed(model, start, n, seed): steps start .. start+n-1 of the seeded input; their outputs
    feed: Callable[[Any, int, int, int], list[Any]]
    size: Callable[[Any], int] = pickled
    #: score(model, start, seed): a score of the next input *without learning* it, if the model
    #: has such a method
    score: Callable[[Any, int, int], Any] | None = None
    #: the model's own save/restore, besides pickle
    restore: Callable[[Any], Any] | None = None
    size_early: int = SIZE_EARLY
    limit: int = 64 * KIB


# -- synthetic input ------------------------------------------------------------------------------


def step_rng(seed: int, start: int) -> random.Random:
    return random.Random(f"{seed}:{start}")


def pump_reading(rng: random.Random, i: int) -> dict[str, float | None]:
    """Realistic infusion-pump readings, with a pause now and then and the odd missing value."""
    paused = i % 700 >= 640
    reading: dict[str, float | None] = {
        "flow_rate": 0.0 if paused else 100 + rng.gauss(0, 1),
        "line_pressure": 55 + rng.gauss(0, 2),
        "motor_current": (0.03 if paused else 0.25) + rng.gauss(0, 0.01),
        "battery": 97 + rng.gauss(0, 0.3),
    }
    if rng.random() < 0.01:
        reading["line_pressure"] = None
    if rng.random() < 0.002:
        reading["motor_current"] = 0.6  # a spike
    return reading


def feed_baseline(model: SignalBaseline, start: int, n: int, seed: int) -> list[Any]:
    rng = step_rng(seed, start)
    out = []
    for i in range(start, start + n):
        bucket = (i // 12) % 24
        x = 10 + (3.0 if 6 <= bucket < 9 else 0.0) + rng.gauss(0, 0.5)
        if rng.random() < 0.01:
            x += 20
        out.append((model.update(x, bucket, learn=i % 50 != 49), model.novel(x)))
    return out


def score_baseline(model: SignalBaseline, start: int, seed: int) -> Any:
    x = 10 + step_rng(seed, start).gauss(0, 2)
    bucket = (start // 12) % 24
    return (model.z(x, bucket), model.novel(x), model.center(bucket), model.scale(bucket))


def pca_input(rng: random.Random) -> list[float]:
    u = rng.gauss(0, 1)
    z = [u, 0.9 * u + rng.gauss(0, 0.3), rng.gauss(0, 1)]
    if rng.random() < 0.02:
        z[1] = -3 * u  # a broken relation
    return z


def feed_pca(model: StreamingPCA, start: int, n: int, seed: int) -> list[Any]:
    rng = step_rng(seed, start)
    return [
        plain(model.update(pca_input(rng), always_learn=i < 150)) for i in range(start, start + n)
    ]


def score_pca(model: StreamingPCA, start: int, seed: int) -> Any:
    return plain(model.score(pca_input(step_rng(seed, start))))


def feed_likelihood(model: AnomalyLikelihood, start: int, n: int, seed: int) -> list[Any]:
    rng = step_rng(seed, start)
    return [model.update(1.0 if (i % 997) < 8 else rng.random()) for i in range(start, start + n)]


def feed_anomaly(model: AnomalyDetector, start: int, n: int, seed: int) -> list[Any]:
    rng = step_rng(seed, start)
    return [
        plain(model.score_one(pump_reading(rng, i), T0 + timedelta(minutes=i)))
        for i in range(start, start + n)
    ]


def feed_trend(model: TrendPredictor, start: int, n: int, seed: int) -> list[Any]:
    rng = step_rng(seed, start)
    out = []
    for i in range(start, start + n):
        reading = pump_reading(rng, i)
        if reading["motor_current"] is not None:
            reading["motor_current"] += 0.0001 * (i % 3000)  # wear, then a repair
        out.append(plain(model.update(T0 + timedelta(minutes=i), reading)))
    return out


def feed_detector(model: DeviceDetector, start: int, n: int, seed: int) -> list[Any]:
    rng = step_rng(seed, start)
    out = []
    for i in range(start, start + n):
        ts = T0 + timedelta(seconds=10 * i)
        skew = timedelta(seconds=300 if i % 400 < 20 else 1)
        result = model.process(ts, i, pump_reading(rng, i), received_at=ts - skew)
        out.append(plain(result))
    return out


def feed_policy(model: AlertPolicy, start: int, n: int, seed: int) -> list[Any]:
    """Scores with bursts (anomalies open, update, resolve) and a prediction every 10 steps."""
    rng = step_rng(seed, start)
    out = []
    for i in range(start, start + n):
        ts = T0 + timedelta(seconds=10 * i)
        burst = i % 500 < 15
        score = min(1.0, 0.6 + 0.4 * rng.random()) if burst else 0.2 * rng.random()
        current = 0.45 if burst else 0.25 + rng.gauss(0, 0.01)
        top = [
            Contribution(metric="motor_current", value=current, baseline=0.25, deviation=9.0),
            Contribution(metric="flow_rate", value=100.0, baseline=100.0, deviation=0.1),
        ]
        events = model.on_score(ts, i, score, top)
        if i % 10 == 9:
            ttf = rng.choice([None, 30.0, 12.0 + rng.random(), 3.0 + rng.random()])
            prediction = Prediction(
                device_id="pump-0001",
                device_type="infusion_pump",
                metric="motor_current",
                ts=ts,
                value=current,
                limit=0.8,
                trend_per_h=0.02,
                time_to_failure_h=ttf,
                detector_version="ts-detector/2",
            )
            events += model.on_prediction(prediction, i)
        out.append(plain(events))
    return out


def feed_monitor(model: DeviceMonitor, start: int, n: int, seed: int) -> list[Any]:
    rng = step_rng(seed, start)
    out = []
    for i in range(start, start + n):
        ts = T0 + timedelta(seconds=10 * i)
        skew = timedelta(seconds=300 if i % 400 < 20 else 1)
        result = model.on_reading(ts, i, pump_reading(rng, i), received_at=ts - skew)
        out.append(plain((result.score, result.contributions, result.predictions, result.alerts)))
    return out


CASES = [
    Case(
        "SignalBaseline",
        lambda: SignalBaseline(PARAMS),
        feed_baseline,
        score=score_baseline,
        limit=4 * KIB,
    ),
    Case(
        "StreamingPCA",
        lambda: StreamingPCA(["a", "b", "c"], PARAMS),
        feed_pca,
        score=score_pca,
        limit=8 * KIB,
    ),
    Case(
        "AnomalyLikelihood",
        lambda: AnomalyLikelihood(PARAMS),
        feed_likelihood,
        size_early=SIZE_EARLY_WINDOWED,
        limit=32 * KIB,
    ),
    Case(
        "AnomalyDetector",
        AnomalyDetector,
        feed_anomaly,
        size_early=SIZE_EARLY_WINDOWED,
    ),
    Case("TrendPredictor", lambda: TrendPredictor("infusion_pump"), feed_trend, limit=16 * KIB),
    Case(
        "DeviceDetector",
        lambda: DeviceDetector("pump-0001", "infusion_pump"),
        feed_detector,
        size=lambda m: len(m.dumps()),
        restore=lambda m: DeviceDetector.loads(m.dumps()),
        size_early=SIZE_EARLY_WINDOWED,
    ),
    Case(
        "AlertPolicy",
        lambda: AlertPolicy("pump-0001", "infusion_pump"),
        feed_policy,
        limit=16 * KIB,
    ),
    Case(
        "DeviceMonitor",
        lambda: DeviceMonitor("pump-0001", "infusion_pump"),
        feed_monitor,
        size=lambda m: len(m.dumps()),
        restore=lambda m: DeviceMonitor.loads(m.dumps()),
        size_early=SIZE_EARLY_WINDOWED,
    ),
]

# -- the checks -----------------------------------------------------------------------------------

N, M = 400, 200


def check_pure_scoring(case: Case) -> None:
    """Scoring without learning is pure; scoring with learning is determined by the state."""
    model = case.make()
    case.feed(model, 0, N, 1)
    if case.score is not None:
        before = pickle.dumps(model)
        first, second = case.score(model, N, 2), case.score(model, N, 2)
        assert first == second
        assert pickle.dumps(model) == before, "scoring changed the state"
    before = pickle.dumps(model)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    assert pickle.dumps(model) == before
    assert case.feed(a, N, 5, 2) == case.feed(b, N, 5, 2)
    assert pickle.dumps(a) == pickle.dumps(b)


def check_pickle_round_trip(case: Case) -> None:
    """Saved after N steps and restored, a model goes on exactly as the original."""
    model = case.make()
    case.feed(model, 0, N, 3)
    restorers: list[Callable[[Any], Any]] = [lambda m: pickle.loads(pickle.dumps(m))]
    if case.restore is not None:
        restorers.append(case.restore)
    copies = [restore(model) for restore in restorers]
    expected = case.feed(model, N, M, 4)
    for restored in copies:
        assert type(restored) is type(model)
        assert case.feed(restored, N, M, 4) == expected


def check_deterministic_for_a_seed(case: Case) -> None:
    a, b = case.make(), case.make()
    out_a, out_b = case.feed(a, 0, N, 5), case.feed(b, 0, N, 5)
    assert out_a == out_b
    assert len(out_a) == N
    assert pickle.dumps(a) == pickle.dumps(b)
    assert case.feed(case.make(), 0, N, 6) != out_a  # the input does matter


def check_bounded_size(case: Case) -> None:
    """The largest size seen late is within 1.5x the largest seen early, and under the limit.

    Sizes are sampled every tenth of the early span, so a model holding an open alert at one
    sample and none at another (a policy) is compared at its largest both times."""
    model = case.make()
    step = max(case.size_early // 10, 1)
    sizes: list[tuple[int, int]] = []
    for start in range(0, SIZE_LATE, step):
        case.feed(model, start, step, 7 + start)
        sizes.append((start + step, case.size(model)))
    early = max(size for n, size in sizes if n <= case.size_early)
    late = max(size for n, size in sizes if n > case.size_early)
    assert late < 1.5 * early, (early, late)
    assert late < case.limit, (late, case.limit)


CHECKS = [
    check_pure_scoring,
    check_pickle_round_trip,
    check_deterministic_for_a_seed,
    check_bounded_size,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invariant(case: Case, check: Callable[[Case], None]) -> None:
    check(case)


def test_every_stateful_model_has_a_case() -> None:
    assert {c.name for c in CASES} == {
        "SignalBaseline",
        "StreamingPCA",
        "AnomalyLikelihood",
        "AnomalyDetector",
        "TrendPredictor",
        "DeviceDetector",
        "AlertPolicy",
        "DeviceMonitor",
    }


def test_the_device_state_budget_holds_for_a_raw_pickle_too() -> None:
    """The 64 KB per device holds for the uncompressed pickle as well, not only the saved state."""
    monitor = DeviceMonitor("pump-0001", "infusion_pump")
    feed_monitor(monitor, 0, SIZE_LATE, 8)
    assert pickled(monitor) < 64 * KIB
    assert pickled(monitor.detector) < 64 * KIB
