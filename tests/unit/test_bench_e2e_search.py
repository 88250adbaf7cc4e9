"""`bench e2e --find-max`: which run counts as keeping up."""

from __future__ import annotations

from twin_stream.devtools.bench.pipeline import SEARCH_RATES, _kept


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
