"""Twin semantics: de-duplication, reordering, staleness, gaps, delta, connectivity."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from twin_stream.domain.messages import (
    DesiredSettings,
    ReportedState,
    StatusMessage,
    telemetry_model,
)
from twin_stream.domain.twin import REORDER_WINDOW, STALE_AFTER, Twin

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def reading(seq: int, ts: datetime = T0, **metrics: float | None) -> object:
    return telemetry_model("infusion_pump").model_validate(
        {
            "device_id": "pump-0001",
            "device_type": "infusion_pump",
            "seq": seq,
            "ts": ts,
            "fw": "1.0.0",
            "metrics": metrics or {"motor_current": 0.3},
        }
    )


def test_duplicates_are_dropped_and_counted() -> None:
    twin = Twin(device_id="pump-0001")
    outcomes = [twin.apply_reading(reading(s), now=T0) for s in (1, 2, 2, 3, 1)]  # type: ignore[arg-type]
    assert outcomes == ["accepted", "accepted", "duplicate", "accepted", "duplicate"]
    assert twin.quality.duplicates == 2 and twin.quality.accepted == 3


@given(st.permutations(list(range(40))), st.integers(0, 5))
def test_any_redelivery_order_within_the_window_accepts_each_seq_exactly_once(
    order: list[int], redeliveries: int
) -> None:
    twin = Twin(device_id="pump-0001")
    stream = order + order[:redeliveries]
    outcomes = [twin.accept_seq(100 + s) for s in stream]
    accepted = [s for s, o in zip(stream, outcomes, strict=True) if o in ("accepted", "reordered")]
    # Seqs below the first one seen count as already seen (they predate this twin).
    expected = sorted(s for s in order if s >= order[0])
    assert sorted(accepted) == expected
    assert twin.quality.gaps == 0


def test_small_reordering_is_accepted_but_does_not_overwrite_newer_values() -> None:
    twin = Twin(device_id="pump-0001")
    twin.apply_reading(reading(8, T0 + timedelta(seconds=8), motor_current=0.2), now=T0)  # type: ignore[arg-type]
    twin.apply_reading(reading(10, T0 + timedelta(seconds=10), motor_current=0.5), now=T0)  # type: ignore[arg-type]
    outcome = twin.apply_reading(reading(9, T0 + timedelta(seconds=9), motor_current=0.1), now=T0)  # type: ignore[arg-type]
    assert outcome == "reordered"
    assert twin.metrics["motor_current"] == 0.5
    assert twin.quality.reordered == 1


def test_stale_data_beyond_the_window_is_rejected() -> None:
    twin = Twin(device_id="pump-0001")
    twin.apply_reading(reading(1000, T0), now=T0)  # type: ignore[arg-type]
    assert twin.apply_reading(reading(1000 - REORDER_WINDOW, T0), now=T0) == "stale"  # type: ignore[arg-type]
    too_old = T0 - STALE_AFTER - timedelta(seconds=1)
    assert twin.apply_reading(reading(1001, too_old), now=T0) == "stale"  # type: ignore[arg-type]
    assert twin.quality.stale == 2


def test_seqs_that_never_arrive_are_counted_as_gaps_once_out_of_the_window() -> None:
    twin = Twin(device_id="pump-0001")
    for s in [0, 1, 2, 5, 6]:  # 3 and 4 missing
        twin.accept_seq(s)
    assert twin.quality.gaps == 0  # they may still come
    twin.accept_seq(6 + REORDER_WINDOW)  # 3 and 4 fall out of the window
    assert twin.quality.gaps == 2
    twin.accept_seq(6 + 2 * REORDER_WINDOW)  # and so does everything skipped after 6
    assert twin.quality.gaps == 2 + (REORDER_WINDOW - 1)


def test_restart_with_a_fresh_counter_is_not_a_flood_of_duplicates() -> None:
    twin = Twin(device_id="pump-0001")
    for s in range(50):
        twin.accept_seq(s)
    birth = StatusMessage(
        device_id="pump-0001", state="online", reason="birth", fw="1.0.1", ts=T0, next_seq=0
    )
    twin.apply_status(birth, now=T0)
    assert twin.accept_seq(0) == "accepted"
    assert twin.quality.restarts == 1


def test_delta_follows_desired_and_clears_when_reported_matches() -> None:
    twin = Twin(device_id="pump-0001")
    v1 = twin.set_desired(DesiredSettings(rate=120.0, sample_interval_s=5.0), now=T0)
    assert twin.delta == {"rate": 120.0, "sample_interval_s": 5.0}
    report = ReportedState.model_validate(
        {
            "device_id": "pump-0001",
            "seq": 1,
            "ts": T0,
            "settings": {"rate": 120.0, "sample_interval_s": 1.0},
            "command_id": "cmd-00000001",
        }
    )
    assert twin.apply_reported(report, now=T0)
    assert twin.delta == {"sample_interval_s": 5.0}
    report2 = report.model_copy(
        update={"settings": report.settings.model_copy(update={"sample_interval_s": 5.0})}
    )
    twin.apply_reported(report2, now=T0)
    assert twin.delta == {}
    assert twin.version > v1
    assert twin.last_command_id == "cmd-00000001"


def test_connectivity_from_status_and_heartbeat() -> None:
    twin = Twin(device_id="pump-0001")
    birth = StatusMessage(device_id="pump-0001", state="online", reason="birth", fw="1.0.0", ts=T0)
    assert twin.apply_status(birth, now=T0) and twin.connectivity == "online"
    # The worker's missed-heartbeat notice, stamped with the moment it is sent for: it counts
    # only once the device is past its heartbeat timeout (30 s for a 1 s device).
    assert twin.overdue_at() == T0 + timedelta(seconds=30)
    notice = birth.model_copy(update={"state": "offline", "reason": "heartbeat"})
    early = notice.model_copy(update={"ts": T0 + timedelta(seconds=20)})
    assert not twin.apply_status(early, now=T0 + timedelta(seconds=20))
    assert twin.connectivity == "online"
    late = notice.model_copy(update={"ts": T0 + timedelta(seconds=30)})
    assert twin.apply_status(late, now=T0 + timedelta(seconds=31))
    assert twin.connectivity == "offline"
    twin.apply_reading(reading(1), now=T0 + timedelta(seconds=40))  # type: ignore[arg-type]
    assert twin.connectivity == "online"
    will = birth.model_copy(update={"state": "offline", "reason": "will"})
    assert twin.apply_status(will, now=T0) and twin.connectivity == "offline"


def test_dropouts_and_invalid_are_data_quality_not_faults() -> None:
    twin = Twin(device_id="pump-0001")
    twin.apply_reading(reading(1, motor_current=None, battery=50.0), now=T0)  # type: ignore[arg-type]
    twin.count_invalid()
    assert twin.quality.dropouts == 3  # motor_current null, flow and pressure absent
    assert twin.quality.invalid == 1
    assert twin.health == "unknown"


def test_twin_state_round_trips_through_json() -> None:
    twin = Twin(device_id="pump-0001")
    rng = random.Random(3)
    for s in rng.sample(range(300), 200):
        twin.accept_seq(s)
    twin.set_desired(DesiredSettings(rate=10.0), now=T0)
    again = Twin.model_validate_json(twin.model_dump_json())
    assert again == twin
