"""NAB's leave-one-category-out scoring: a threshold chosen elsewhere, applied to held-out
files, scores them by NAB's rules."""

from __future__ import annotations

from twin_stream.devtools.evaluation.nab_scoring import (
    PROFILES,
    best_threshold,
    raw_score_at,
    sweep_rows,
)


def _files() -> tuple[list[list], set[str]]:
    profile = PROFILES["standard"]
    scores_a = [0.0] * 100 + [0.9] * 5 + [0.0] * 95  # detected inside its window
    scores_b = [0.0] * 150 + [0.95] + [0.0] * 49  # a false alarm, its window missed
    files = [
        sweep_rows("a/one.csv", scores_a, [(95, 115)], profile),
        sweep_rows("b/two.csv", scores_b, [(40, 60)], profile),
    ]
    windows = {r.window for rows in files for r in rows if r.window is not None}
    return files, windows


def test_the_raw_score_at_the_best_threshold_is_the_best_raw_score() -> None:
    files, windows = _files()
    profile = PROFILES["standard"]
    threshold, raw = best_threshold(files, windows, profile)
    assert raw_score_at(files, windows, threshold, profile) == raw


def test_a_threshold_chosen_on_other_files_is_charged_for_its_misses() -> None:
    files, windows = _files()
    profile = PROFILES["standard"]
    held = [files[1]]
    held_windows = {r.window for r in files[1] if r.window is not None}
    threshold, _ = best_threshold([files[0]], windows - held_windows, profile)
    raw = raw_score_at(held, held_windows, threshold, profile)
    # the held-out file's false alarm (0.95 >= 0.9) is charged, and its window is missed
    assert raw < -profile.fn
    assert raw_score_at(held, held_windows, 1.1, profile) == -profile.fn  # no alarm at all
