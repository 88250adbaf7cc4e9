"""The healthy reference and the health index (synthetic data only)."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

from twin_stream.domain.detection.health import HealthMonitor, HealthReading
from twin_stream.domain.detection.multivariate import chi2_ppf
from twin_stream.domain.detection.params import HealthParams

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _feed(
    h: HealthMonitor,
    n: int,
    *,
    start: int = 0,
    drift_from: int | None = None,
    seed: int = 1,
    minutes: float = 1.0,
) -> list[HealthReading]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        d = 0.0 if drift_from is None or i < drift_from else (i - drift_from) / 60.0
        u = rng.gauss(0, 1)
        metrics: dict[str, float | None] = {
            "a": 10 + u,
            "b": 5 + 0.8 * u + 0.6 * rng.gauss(0, 1) + d,
            "c": rng.gauss(0, 2),
            "flat": 3.0,
        }
        out.append(h.update(T0 + timedelta(minutes=i * minutes), metrics))
    return out


def test_reference_freezes_after_its_learning_period_readings_or_first_day() -> None:
    h = HealthMonitor()
    readings = _feed(h, 399)
    assert not h.reference_frozen and all(r.learning and r.index is None for r in readings)
    _feed(h, 1, start=399)
    assert h.reference_frozen and h.hours_at(T0) is None
    hourly = HealthMonitor()
    _feed(hourly, 25, minutes=60.0)  # one an hour: the first day ends first
    assert hourly.reference_frozen
    sparse = HealthMonitor(HealthParams(min_reference=20))
    _feed(sparse, 19, minutes=600.0)  # a day passed, but too few readings
    assert not sparse.reference_frozen


def test_a_healthy_unit_does_not_page_and_a_drifting_one_does_naming_the_signal() -> None:
    healthy = HealthMonitor()
    assert max(r.stage for r in _feed(healthy, 20000, seed=2)) == 0
    drifting = HealthMonitor()
    out = _feed(drifting, 6000, drift_from=2000, seed=3)
    assert max(r.stage for r in out[:2000]) == 0
    assert out[-1].stage == 2 and out[-1].drivers[0][0] == "b" and out[-1].drivers[0][1] > 0
    assert out[-1].trend_per_h is not None and out[-1].trend_per_h > 0
    first = next(i for i, r in enumerate(out) if r.stage >= 1)
    assert 2000 < first < 6000


def test_a_noisy_heavy_tailed_healthy_series_does_not_page() -> None:
    rng = random.Random(5)
    h = HealthMonitor()
    stages = []
    for i in range(20000):
        x = rng.gauss(0, 1) * (3.0 if rng.random() < 0.05 else 1.0)
        r = h.update(T0 + timedelta(minutes=i), {"x": 100 + x, "y": 50 + rng.gauss(0, 0.5)})
        stages.append(r.stage)
    assert max(stages) == 0


def test_the_reference_does_not_learn_the_drift_and_relearn_does() -> None:
    h = HealthMonitor()
    _feed(h, 6000, drift_from=2000)
    frozen = h.frozen_ts
    assert h.last.index is not None and h.last.index > 5
    h.relearn()
    assert not h.reference_frozen and h.history() == []
    _feed(h, 1200, start=6000)
    assert h.reference_frozen and h.frozen_ts != frozen


def test_signals_new_after_the_freeze_are_ignored_and_constants_do_not_blow_up() -> None:
    h = HealthMonitor()
    _feed(h, 400)
    assert "flat" in h.names and "late" not in h.names
    r = None
    for i in range(400, 600):
        r = h.update(
            T0 + timedelta(minutes=i), {"a": 10.0, "b": 5.0, "c": 0.0, "flat": 3.0, "late": 1e9}
        )
    assert r is not None and r.index is not None and r.index < 1.0


def test_history_is_bounded_and_on_the_reference_clock() -> None:
    h = HealthMonitor()
    _feed(h, 400 + 10 * 1000)
    hist = h.history()
    assert len(hist) <= h.params.history_points
    assert hist == sorted(hist) and hist[-1][0] > 100.0
    last_ts = T0 + timedelta(minutes=400 + 10 * 1000 - 1)
    assert abs((h.hours_at(last_ts) or 0) - hist[-1][0]) < 1e-9


def test_a_restored_monitor_gives_the_same_index_and_its_state_is_small() -> None:
    h = HealthMonitor()
    _feed(h, 5000, drift_from=3000)
    data = pickle.dumps(h, protocol=5)
    assert len(data) < 16 * 1024
    restored = pickle.loads(data)
    a = _feed(h, 100, start=5000, drift_from=3000, seed=9)
    b = _feed(restored, 100, start=5000, drift_from=3000, seed=9)
    assert [r.index for r in a] == [r.index for r in b]
    assert restored.reference_frozen and restored.history() == h.history()


def test_chi2_quantile_is_close_to_the_exact_one() -> None:
    # exact: chi2.ppf(0.999, 10) = 29.588, chi2.ppf(0.99, 4) = 13.277
    assert abs(chi2_ppf(0.999, 10) - 29.588) < 0.3
    assert abs(chi2_ppf(0.99, 4) - 13.277) < 0.2
