"""`bench e2e --find-max`: which run counts as keeping up."""

from __future__ import annotations

from twin_stream.devtools.bench.pipeline import SEARCH_RATES, _kept
from twin_stream.devtools.bench.readback import ScoredReading, latency_split


def run(p99: float | None, scored: int = 100, stored: int = 100) -> dict[str, object]:
    return {"rate": 500, "published": 100, "scored": scored, "stored": stored, "p99_ms": p99}


def test_a_run_keeps_up_only_with_everything_scored_and_stored_under_the_limit() -> None:
    assert _kept(run(999.0), 1000.0)
    assert not _kept(run(1001.0), 1000.0)
    assert not _kept(run(10.0, scored=99), 1000.0)  # a reading not scored is lost
    assert not _kept(run(10.0, stored=99), 1000.0)  # nor stored
    assert not _kept(run(None, scored=0), 1000.0)


def test_the_search_steps_up() -> None:
    assert list(SEARCH_RATES) == sorted(SEARCH_RATES) and 1000 in SEARCH_RATES


def test_the_latency_split_adds_up_and_keeps_first_readings_apart() -> None:
    # Device a: its first reading took 2 s (1.5 s of it after the bridge), the next 100 ms.
    scored = [ScoredReading("a", 2, 10.0, 10.1), ScoredReading("a", 1, 9.0, 11.0)]
    scored += [ScoredReading("b", s, float(s), s + 0.05) for s in range(1, 99)]
    bridged = {("a", 1): 9.5, ("a", 2): 10.01}
    bridged |= {("b", s): s + 0.01 for s in range(1, 99)}
    split = latency_split(scored, bridged)
    assert split["p99_ms"] == 2000.0
    assert split["p50_ms"] == 50.0
    assert split["p99_to_bridge_ms"] == 500.0
    assert split["p99_bridge_to_score_ms"] == 1500.0
    assert split["p99_first_reading_ms"] == 2000.0  # a's seq 1, though it arrived last


def test_readings_the_collector_never_saw_bridged_count_only_in_the_total() -> None:
    split = latency_split([ScoredReading("a", 1, 0.0, 0.2)], {})
    assert split["p99_ms"] == 200.0
    assert split["p99_to_bridge_ms"] is None and split["p99_bridge_to_score_ms"] is None
    assert set(latency_split([], {})) == set(split) and latency_split([], {})["p99_ms"] is None
