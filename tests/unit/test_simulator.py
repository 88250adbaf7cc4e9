"""The simulated fleet: deterministic for a seed, and every fault leaves the signature it claims."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.device import SimulatedDevice
from simulators.devices import MODELS
from simulators.fast_forward import readings, write_dataset
from simulators.faults import DEGRADATIONS, GENERIC_FAULTS, Fault
from simulators.fleet import FleetPlan
from twin_stream.domain.devices import METRICS_BY_TYPE, fleet_device, metric_spec
from twin_stream.domain.messages import DesiredMessage, parse_telemetry

INTERVAL = 60.0
HOUR = 3600.0


def run(device: SimulatedDevice, hours: float) -> list[tuple[float, dict[str, float | None]]]:
    plan = FleetPlan([device], hours=hours, seed=0)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    return [
        ((r.ts - start).total_seconds(), r.metrics.model_dump())  # type: ignore[attr-defined]
        for r in readings(plan, interval_s=INTERVAL, start=start)
    ]


def values(
    rows: list[tuple[float, dict[str, float | None]]], metric: str, start_s: float, end_s: float
) -> list[float]:
    return [m[metric] for t, m in rows if start_s <= t < end_s and m[metric] is not None]  # type: ignore[misc]


def test_same_seed_same_dataset_and_another_seed_another(tmp_path: Path) -> None:
    def dataset(seed: int, name: str) -> tuple[bytes, bytes]:
        plan = FleetPlan.generate(15, hours=6, fault_fraction=0.4, seed=seed)
        write_dataset(plan, tmp_path / name, interval_s=120)
        return (tmp_path / name / "telemetry.csv").read_bytes(), (
            tmp_path / name / "labels.json"
        ).read_bytes()

    assert dataset(5, "a") == dataset(5, "b")
    assert dataset(5, "a") != dataset(6, "c")


def test_every_reading_is_valid_protocol() -> None:
    plan = FleetPlan.generate(10, hours=2, fault_fraction=1.0, seed=3)
    start = datetime.now(UTC) - timedelta(hours=2)
    count = 0
    for r in readings(plan, interval_s=60, start=start):
        raw = r.model_dump_json(exclude_none=True).encode()
        assert parse_telemetry(raw, now=start + timedelta(hours=2)) == r
        count += 1
    assert count > 500


DEGRADATION_CASES = [(t, k) for t, kinds in DEGRADATIONS.items() for k in kinds]


@pytest.mark.parametrize(("device_type", "kind_name"), DEGRADATION_CASES)
def test_degradation_moves_its_signal_to_the_failure_limit(
    device_type: str, kind_name: str
) -> None:
    kind = DEGRADATIONS[device_type][kind_name]
    assert kind.metric is not None
    onset, duration = 10 * HOUR, 20 * HOUR
    fault = Fault(kind.name, "degradation", kind.metric, onset, duration, kind.exponent)
    device = SimulatedDevice.create(f"{fleet_device(1)[0]}", device_type, seed=11, faults=[fault])
    rows = run(device, hours=32)
    spec = metric_spec(device_type, kind.metric)
    rising = spec.failure_above is not None
    limit = spec.failure_above if rising else spec.failure_below
    assert limit is not None

    before = statistics.median(values(rows, kind.metric, 0, onset))
    near_failure = values(rows, kind.metric, onset + 0.9 * duration, onset + duration)
    late = statistics.median(near_failure)
    # It moved towards the limit by most of the way...
    assert (late - before) / (limit - before) > 0.6, (before, late, limit)
    # ...and crossed it by the labelled failure time.
    crossed = max(near_failure) > limit if rising else min(near_failure) < limit
    assert crossed, (near_failure[-5:], limit)
    # A healthy stretch before onset stays inside the limit.
    healthy = values(rows, kind.metric, 0, onset)
    assert all((v < limit) if rising else (v > limit) for v in healthy)
    # The trend after onset points at the limit: compare consecutive quarters.
    quarters = [
        statistics.median(
            values(rows, kind.metric, onset + q * duration / 4, onset + (q + 1) * duration / 4)
        )
        for q in range(4)
    ]
    steps = [b - a for a, b in zip(quarters, quarters[1:], strict=False)]
    assert sum(s > 0 if rising else s < 0 for s in steps) >= 2, quarters


def test_maintenance_ends_a_degradation() -> None:
    fault = Fault("motor_wear", "degradation", "motor_current", 1 * HOUR, 10 * HOUR, 1.0)
    device = SimulatedDevice.create("pump-0001", "infusion_pump", seed=2, faults=[fault])
    device.model.rate = 100.0
    for step in range(int(9 * HOUR / INTERVAL)):
        device.sample(step * INTERVAL, INTERVAL)
    worn = device.sample(9 * HOUR, INTERVAL)["motor_current"]
    now = datetime(2026, 1, 5, tzinfo=UTC)
    message = DesiredMessage.model_validate(
        {
            "command_id": "cmd-00000001",
            "twin_version": 1,
            "issued_at": now,
            "expires_at": now + timedelta(hours=1),
            "desired": {"maintenance_epoch": 1},
        }
    )
    ack = device.apply_desired(message, t_s=9 * HOUR, wall=now)
    assert ack.status == "applied"
    assert device.settings.maintenance_epoch == 1
    fixed = statistics.median(
        device.sample(9 * HOUR + i * INTERVAL, INTERVAL)["motor_current"] or 0 for i in range(30)
    )
    assert worn is not None and fixed < worn - 0.2
    assert device.apply_desired(message, t_s=9 * HOUR, wall=now).status == "applied"  # idempotent
    assert device.settings.maintenance_epoch == 1


def test_commands_a_device_cannot_follow_are_rejected_or_expired() -> None:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    monitor = SimulatedDevice.create("mon-0003", "patient_monitor", seed=1)
    message = DesiredMessage.model_validate(
        {
            "command_id": "cmd-00000002",
            "twin_version": 1,
            "issued_at": now,
            "expires_at": now + timedelta(hours=1),
            "desired": {"rate": 20.0},
        }
    )
    assert monitor.apply_desired(message, t_s=0, wall=now).status == "rejected"
    pump = SimulatedDevice.create("pump-0001", "infusion_pump", seed=1)
    late = now + timedelta(hours=2)
    assert pump.apply_desired(message, t_s=0, wall=late).status == "expired"
    assert pump.apply_desired(message, t_s=0, wall=now).status == "applied"
    assert pump.settings.rate == 20.0


@pytest.mark.parametrize("kind_name", sorted(GENERIC_FAULTS))
def test_generic_faults_leave_their_signature(kind_name: str) -> None:
    kind = GENERIC_FAULTS[kind_name]
    metric = "compressor_temp"
    onset, duration = 2 * HOUR, 3 * HOUR
    fault = Fault(
        kind.name,
        kind.category,
        metric if kind.category == "sensor" else None,
        onset,
        duration,
        kind.exponent,
    )
    device = SimulatedDevice.create("mri-0005", "mri_chiller", seed=4, faults=[fault])
    rows = run(device, hours=8)
    during = [m for t, m in rows if onset <= t < onset + duration]
    after = [m for t, m in rows if t >= onset + duration + INTERVAL]
    if kind_name == "stuck_sensor":
        assert len({m[metric] for m in during}) == 1
        assert len({m[metric] for m in after}) > 10
    elif kind_name == "sensor_drift":
        shift = statistics.median(values(rows, metric, onset + 0.8 * duration, onset + duration))
        assert shift - statistics.median(values(rows, metric, 0, onset)) > 5
    elif kind_name == "dropouts":
        assert sum(m[metric] is None for m in during) > 0.2 * len(during)
        assert all(m[metric] is not None for t, m in rows if t < onset)
    elif kind_name == "offline":
        assert during == [] and len(after) > 10
    else:  # pragma: no cover - a new generic fault needs its own check here
        pytest.fail(f"no signature check for {kind_name}")


def test_models_report_exactly_their_types_metrics() -> None:
    for device_type, model in MODELS.items():
        device = SimulatedDevice.create("dev-0001", device_type, seed=1)
        assert set(device.sample(0.0, 1.0)) == set(METRICS_BY_TYPE[device_type])
        assert set(device.model.nominal) <= set(METRICS_BY_TYPE[device_type]), model
        for kind in DEGRADATIONS[device_type].values():
            assert kind.metric in device.model.nominal
            assert metric_spec(device_type, kind.metric).degrades


def test_every_fault_kind_applies_to_every_metric_of_every_type() -> None:
    """A sensor drift or stuck sensor can hit a signal that has no fixed nominal value."""
    import random

    from simulators.devices import MODELS
    from simulators.faults import Fault
    from twin_stream.domain.devices import METRICS_BY_TYPE

    for device_type, specs in METRICS_BY_TYPE.items():
        for metric in specs:
            for kind in ("sensor_drift", "stuck_sensor", "dropouts"):
                model = MODELS[device_type](random.Random(1))
                fault = Fault(kind, "sensor", metric=metric, onset_s=0.0, duration_s=100.0)
                healthy, faulty = [], []
                for t in range(10, 100, 10):
                    metrics = model.sample(float(t), 10.0)
                    healthy.append(metrics[metric])
                    fault.apply(metrics, float(t), device_type, model.nominal, random.Random(t))
                    faulty.append(metrics[metric])
                assert faulty != healthy, (device_type, metric, kind)
