"""Data-quality checks of one device: stuck, dropout, pinned, clock skew, and their clearing."""

from __future__ import annotations

import random

from twin_stream.domain.detection.quality import (
    DROPOUT_SHARE,
    DROPOUT_WINDOW,
    PINNED_READINGS,
    SKEW_READINGS,
    STUCK_READINGS,
    QualityFinding,
    QualityMonitor,
)
from twin_stream.domain.devices import metric_spec


def issues(found: list[QualityFinding]) -> set[tuple[str, str]]:
    return {(f.metric, f.issue) for f in found}


def noisy(rng: random.Random) -> dict[str, float | None]:
    return {
        "flow_rate": 100 + rng.gauss(0, 1),
        "line_pressure": 55 + rng.gauss(0, 2),
        "motor_current": 0.25 + rng.gauss(0, 0.01),
    }


def test_a_noisy_signal_that_freezes_is_stuck_after_30_readings_and_clears() -> None:
    q, rng = QualityMonitor("infusion_pump"), random.Random(1)
    for _ in range(100):
        assert q.update(noisy(rng)) == []
    frozen = 101.37
    seen = []
    for _ in range(STUCK_READINGS + 10):
        seen.append(issues(q.update({**noisy(rng), "line_pressure": frozen})))
    assert STUCK_READINGS == 30
    assert all(s == set() for s in seen[: STUCK_READINGS - 1])
    assert seen[STUCK_READINGS - 1] == {("line_pressure", "stuck")}  # the 30th identical value
    assert all(s == {("line_pressure", "stuck")} for s in seen[STUCK_READINGS:])
    finding = q.update({**noisy(rng), "line_pressure": frozen})[0]
    assert "line_pressure stuck at 101.37 mmHg" in finding.detail
    assert q.update(noisy(rng)) == []  # it moves again: the condition no longer holds


def test_a_constant_setpoint_from_the_start_is_never_stuck() -> None:
    q, rng = QualityMonitor("infusion_pump"), random.Random(2)
    for _ in range(1000):
        found = q.update({**noisy(rng), "flow_rate": 120.0})
        assert found == []
    # nor a signal that only steps between a few settings
    q = QualityMonitor("infusion_pump")
    for i in range(1000):
        assert q.update({"flow_rate": [50.0, 80.0, 125.0][(i // 100) % 3]}) == []


def test_dropouts_of_a_quarter_of_the_window_are_found_and_clear() -> None:
    assert DROPOUT_WINDOW == 60 and DROPOUT_SHARE == 0.25
    q, rng = QualityMonitor("infusion_pump"), random.Random(3)
    for _ in range(DROPOUT_WINDOW):
        assert q.update(noisy(rng)) == []
    found: list[set[tuple[str, str]]] = []
    for i in range(2 * DROPOUT_WINDOW):  # every 4th reading lacks the motor current: 25 %
        reading = noisy(rng)
        if i % 4 == 3:
            reading["motor_current"] = None
        found.append(issues(q.update(reading)))
    assert ("motor_current", "dropout") not in found[DROPOUT_WINDOW - 2]  # 14 of 60
    assert all(f == {("motor_current", "dropout")} for f in found[DROPOUT_WINDOW:])
    detail = q.update({**noisy(rng), "motor_current": None})[0].detail
    assert detail.startswith("motor_current missing in ")
    assert detail.endswith("of the last 60 readings")
    # the signal is back: once the window holds fewer than 15 gaps, the condition ends
    after = [issues(q.update(noisy(rng))) for _ in range(DROPOUT_WINDOW)]
    assert after[-1] == set()
    assert sum(bool(a) for a in after) < DROPOUT_WINDOW // 2


def test_fewer_dropouts_than_a_quarter_are_not_a_finding() -> None:
    q, rng = QualityMonitor("infusion_pump"), random.Random(4)
    for i in range(600):  # every 5th reading missing: 20 %
        reading = noisy(rng)
        if i % 5 == 4:
            reading["flow_rate"] = None
        assert q.update(reading) == []


def test_a_signal_pinned_at_its_range_limit_is_found_and_clears() -> None:
    spec = metric_spec("infusion_pump", "line_pressure")
    assert spec.high == 1500
    q, rng = QualityMonitor("infusion_pump"), random.Random(5)
    for _ in range(50):
        q.update(noisy(rng))
    seen = [issues(q.update({**noisy(rng), "line_pressure": spec.high})) for _ in range(15)]
    assert all(s == set() for s in seen[: PINNED_READINGS - 1])
    assert all(s == {("line_pressure", "pinned")} for s in seen[PINNED_READINGS - 1 :])
    detail = q.update({**noisy(rng), "line_pressure": spec.high})[0].detail
    assert "pinned at its range limit 1500 mmHg" in detail
    # pinned takes precedence over stuck (the same value 30 times at the limit)
    for _ in range(STUCK_READINGS):
        found = q.update({**noisy(rng), "line_pressure": spec.high})
    assert issues(found) == {("line_pressure", "pinned")}
    assert q.update(noisy(rng)) == []  # off the limit: clears at once
    # beyond the limit (an out-of-range value) counts too, at either bound
    for bound in (spec.high + 1, spec.low - 1):
        q.update({**noisy(rng), "line_pressure": 800.0})  # far from both
        for _ in range(PINNED_READINGS):
            found = q.update({**noisy(rng), "line_pressure": bound})
        assert issues(found) == {("line_pressure", "pinned")}, bound


def test_a_paused_pump_and_a_charged_battery_are_not_pinned() -> None:
    """Zero is an "off" reading (a paused pump's flow), and a battery charges up to 100 %
    gradually: neither is a sensor on its rail (nor stuck)."""
    assert metric_spec("infusion_pump", "flow_rate").low == 0
    assert metric_spec("infusion_pump", "battery").high == 100
    q, rng = QualityMonitor("infusion_pump"), random.Random(9)
    for i in range(200):
        q.update({**noisy(rng), "battery": min(100.0, 95.0 + i * 0.05)})
    for _ in range(3 * STUCK_READINGS):  # paused, fully charged
        found = q.update({**noisy(rng), "flow_rate": 0.0, "battery": 100.0})
        assert ("flow_rate", "pinned") not in issues(found)
        assert ("flow_rate", "stuck") not in issues(found)
        assert ("battery", "pinned") not in issues(found)


def test_a_value_near_but_inside_the_limit_is_not_pinned() -> None:
    spec = metric_spec("infusion_pump", "motor_current")
    q, rng = QualityMonitor("infusion_pump"), random.Random(6)
    for _ in range(100):
        found = q.update({"motor_current": spec.high - 0.01 - abs(rng.gauss(0, 0.001))})
    assert found == []


def test_an_unknown_device_type_has_no_pinned_check() -> None:
    q = QualityMonitor("no_such_type")
    for _ in range(50):
        found = q.update({"x": 0.0})
    assert found == []


def test_clock_skew_of_5_minutes_for_10_readings_is_found_and_clears() -> None:
    q, rng = QualityMonitor("infusion_pump"), random.Random(7)
    for _ in range(20):
        assert q.update(noisy(rng), skew_s=1.5) == []
    seen = [issues(q.update(noisy(rng), skew_s=300.0)) for _ in range(SKEW_READINGS + 5)]
    assert all(s == set() for s in seen[: SKEW_READINGS - 1])
    assert all(s == {("ts", "clock_skew")} for s in seen[SKEW_READINGS - 1 :])
    assert q.update(noisy(rng), skew_s=-300.0)[0].detail == "device clock -300 s off the platform's"
    assert q.update(noisy(rng), skew_s=0.2) == []  # back in sync: clears at once
    # a few skewed readings are not a condition (a reading delayed in a queue)
    for _ in range(SKEW_READINGS - 1):
        assert q.update(noisy(rng), skew_s=300.0) == []
    assert q.update(noisy(rng), skew_s=0.0) == []
    # no receive time: no skew check (and the count is left alone)
    assert q.update(noisy(rng)) == []


def test_reset_forgets_every_signal() -> None:
    q, rng = QualityMonitor("infusion_pump"), random.Random(8)
    for _ in range(100):
        q.update(noisy(rng))
    for _ in range(STUCK_READINGS):
        found = q.update({**noisy(rng), "flow_rate": 99.0})
    assert issues(found) == {("flow_rate", "stuck")}
    q.reset()
    for _ in range(STUCK_READINGS + 5):  # a replaced sensor has to move again first
        assert q.update({**noisy(rng), "flow_rate": 99.0}) == []


def test_a_signal_not_reported_for_a_stretch_is_a_mode_not_a_dropout() -> None:
    q, rng = QualityMonitor("infusion_pump"), random.Random(10)
    for _ in range(DROPOUT_WINDOW):
        q.update(noisy(rng))
    for i in range(2 * DROPOUT_WINDOW):  # one gap of 25 readings (standby), then back
        reading = noisy(rng)
        if 10 <= i < 35:
            reading["motor_current"] = None
        assert q.update(reading) == []
