"""The fleet model: remaining useful life from learned failures (synthetic paths)."""

from __future__ import annotations

import json
import math
import random

import pytest

from twin_stream.domain.detection.rul import FleetModel


def _path(
    life: float, onset: float, rate: float, end: float | None = None, seed: int = 0
) -> list[tuple[float, float]]:
    """(hours, index) every 10 h: flat ~0.5 until ``life - onset``, then exponential."""
    rng = random.Random(seed)
    stop = life if end is None else end
    return [
        (t, 0.5 + max(0.0, math.exp(rate * (t - (life - onset))) - 1.0) + rng.gauss(0, 0.05))
        for t in range(0, int(stop), 10)
    ]


def _model(n: int = 12) -> FleetModel:
    model = FleetModel()
    for k in range(n):
        life = 200.0 + 15 * k
        model.learn(_path(life, 100.0, 0.025, seed=k), life)
    return model


def test_no_prediction_before_enough_failures() -> None:
    model = FleetModel()
    for k in range(model.min_failures - 1):
        model.learn(_path(200.0, 100.0, 0.025, seed=k), 200.0)
    assert model.failures == model.min_failures - 1
    assert model.predict(_path(300.0, 100.0, 0.025, end=250.0)) is None


def test_predicts_the_remaining_life_of_a_degrading_unit_within_its_interval() -> None:
    model = _model()
    for remaining in (20.0, 50.0, 80.0):
        life = 260.0
        live = _path(life, 100.0, 0.025, end=life - remaining + 1, seed=99)
        estimate = model.predict(live)
        assert estimate is not None
        true = life - live[-1][0]
        assert abs(estimate.rul_h - true) < 20.0, (remaining, estimate)
        assert estimate.low_h <= estimate.rul_h <= estimate.high_h


def test_a_healthy_unit_gets_a_long_remaining_life() -> None:
    estimate = _model().predict(_path(400.0, 100.0, 0.025, end=150.0, seed=7))
    assert estimate is not None and estimate.rul_h > 100.0


def test_histories_that_stop_before_failure_are_learned_and_extended() -> None:
    model = FleetModel()
    for k in range(10):  # each record stops 30 h before its failure
        life = 220.0 + 10 * k
        model.learn(_path(life, 100.0, 0.025, end=life - 30, seed=k), life)
    live = _path(240.0, 100.0, 0.025, end=231.0, seed=50)  # 10 h from failure
    estimate = model.predict(live)
    assert estimate is not None and estimate.rul_h < 30.0


def test_json_round_trip_and_validation() -> None:
    model = _model(5)
    data = json.loads(json.dumps(model.to_json()))
    restored = FleetModel.from_json(data)
    live = _path(260.0, 100.0, 0.025, end=220.0, seed=3)
    assert restored.failures == 5 and restored.predict(live) == model.predict(live)
    for bad, reason in (
        ([], "expected an object"),
        ({"version": 99, "units": []}, "version"),
        ({"version": 2, "units": [[["x", 1.0]]], "learned": [None]}, "not"),
        ({"version": 2, "units": [[[-1.0, 1.0]]], "learned": [None]}, "hours to failure"),
        ({"version": 2, "units": [[[5.0, 1.0], [1.0, 2.0]]], "learned": [None]}, "order"),
        ({"version": 2, "units": [[]], "learned": [None]}, "1-"),
        ({"version": 2, "units": [[[1.0, 1.0]]]}, "'learned'"),
        ({"version": 2, "units": [[[1.0, 1.0]]], "learned": [3]}, "failure id"),
    ):
        with pytest.raises(ValueError, match=reason):
            FleetModel.from_json(bad)  # type: ignore[arg-type]


def test_learn_rejects_a_bad_failure_time_and_ignores_an_empty_history() -> None:
    model = FleetModel()
    with pytest.raises(ValueError):
        model.learn([(0.0, 1.0)], float("nan"))
    assert not model.learn([], 10.0)
    assert not model.learn([(20.0, 1.0)], 10.0)  # only points after the failure
    assert model.failures == 0
    assert model.learn([(1.0, 1.0)], 10.0, "pump|pump-0001|t")
    assert not model.learn([(2.0, 1.0)], 10.0, "pump|pump-0001|t")  # the same failure again
    assert model.failures == 1
