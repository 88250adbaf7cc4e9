"""Cross-validated evaluation: NAB's leave-one-category-out scoring (a threshold chosen on the
other categories, applied to the held-out one, scores it by NAB's rules) and SKAB's file split
(each half of the files scored on its own). All data is generated here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_eval_skab import ROWS, write_skab
from tests.unit.test_evaluation import nab_stamp, run, write_nab_file
from twin_stream.devtools.evaluation import nab
from twin_stream.devtools.evaluation.nab_scoring import (
    PROFILES,
    ScoredRow,
    best_threshold,
    normalized_score,
    raw_score_at,
    sweep_rows,
)
from twin_stream.devtools.evaluation.skab import (
    TRAIN_ROWS,
    Confusion,
    find_files,
    run_file,
    split_halves,
)


def _files() -> tuple[list[list[ScoredRow]], set[str]]:
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


# -- eval nab --cv: leave one category out, through evaluate_nab ------------------------------


def _nab_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """Three categories, one 1000-row file each (see test_leave_one_category_out_by_hand)."""
    data = tmp_path / "data"
    windows: dict[str, list[list[str]]] = {}
    for key, labelled in (("a/one.csv", True), ("b/two.csv", True), ("none/three.csv", False)):
        path = data / key
        path.parent.mkdir(parents=True)
        path.write_text(
            "timestamp,value\n" + "".join(f"{nab_stamp(i)[:19]},1.0\n" for i in range(1000))
        )
        windows[key] = [[nab_stamp(500), nab_stamp(549)]] if labelled else []
    labels = tmp_path / "combined_windows.json"
    labels.write_text(json.dumps(windows))
    return data, labels


#: The scores the detector is made to give: "a" detects its window at its left edge at 0.9,
#: "b" at 0.6, and "none" (no window) has one false alarm at 0.7.
SCORES = {
    "a/one.csv": {500: 0.9},
    "b/two.csv": {500: 0.6},
    "none/three.csv": {300: 0.7},
}


def test_leave_one_category_out_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, labels = _nab_corpus(tmp_path)
    calls: list[str] = []

    def fake_score_file(nab_file: nab.NabFile) -> list[float]:
        calls.append(nab_file.key)
        return [SCORES[nab_file.key].get(i, 0.0) for i in range(len(nab_file.values))]

    monkeypatch.setattr(nab, "score_file", fake_score_file)
    result = nab.evaluate_nab(data, labels, tmp_path / "out", cv=True)
    assert sorted(calls) == sorted(SCORES)  # the detector runs once per file, not per fold
    standard = result["standard"]
    # in-sample: at 0.6 both windows are detected and the false alarm (0.7) is charged
    assert standard["threshold"] == 0.6
    assert standard["score"] == pytest.approx(100 * (2 - 0.11 + 2) / 4)
    folds = standard["cross_validated"]["folds"]
    # held "a": chosen on b + none -> 0.6 (b's hit is worth its false alarm); a is detected
    assert folds["a"]["threshold"] == 0.6 and folds["a"]["raw"] == pytest.approx(1.0)
    # held "b": chosen on a + none -> 0.9; b's 0.6 is below it: its window is missed
    assert folds["b"]["threshold"] == 0.9 and folds["b"]["raw"] == pytest.approx(-1.0)
    # held "none": chosen on a + b -> 0.6; its 0.7 is a false alarm, and it has no window
    assert folds["none"]["threshold"] == 0.6 and folds["none"]["raw"] == pytest.approx(-0.11)
    assert folds["none"]["windows"] == 0 and folds["none"]["score"] is None
    assert folds["a"]["score"] == pytest.approx(100.0)
    # pooled: the held-out raw scores summed, normalised against all windows of the corpus
    assert standard["cross_validated"]["score"] == pytest.approx(100 * (-0.11 + 2) / 4)
    low_fp = result["reward_low_FP_rate"]["cross_validated"]
    assert low_fp["folds"]["none"]["raw"] == pytest.approx(-0.22)


def test_eval_nab_cv_json_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    windows = {
        key: [list(write_nab_file(data, key, 1000, at, seed))]
        for key, at, seed in (
            ("artificialWithAnomaly/jump.csv", 700, 1),
            ("realKnownCause/jump.csv", 800, 2),
        )
    }
    labels = tmp_path / "combined_windows.json"
    labels.write_text(json.dumps(windows))
    result = run(
        "eval", "nab", "--data", str(data), "--labels", str(labels),
        "--out", str(tmp_path / "out"), "--cv", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for profile in PROFILES:
        held = figures[profile]["cross_validated"]
        assert set(held["folds"]) == {"artificialWithAnomaly", "realKnownCause"}
        raw = sum(f["raw"] for f in held["folds"].values())
        expected = normalized_score(raw, 2, PROFILES[profile])
        assert held["score"] == pytest.approx(expected, abs=0.05)  # raw: 3 decimals
    without = run(
        "eval", "nab", "--data", str(data), "--labels", str(labels),
        "--out", str(tmp_path / "out"), "--json",
    )  # fmt: skip
    assert "cross_validated" not in json.loads(without.stdout)["standard"]


# -- eval skab --cv: two halves of the files ---------------------------------------------------


def test_files_split_in_two_halves_per_folder(tmp_path: Path) -> None:
    for name in [f"valve1/{i}.csv" for i in range(16)] + ["valve2/0.csv", "valve2/1.csv",
                                                          "valve2/2.csv"]:  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    halves = split_halves(tmp_path, find_files(tmp_path))
    assert list(halves) == ["valve1/0-7,valve2/0-1", "valve1/8-15,valve2/2"]
    first, second = halves.values()
    assert [p.stem for p in first] == [str(i) for i in range(8)] + ["0", "1"]
    assert [p.stem for p in second] == [str(i) for i in range(8, 16)] + ["2"]


def test_eval_skab_cv_scores_each_half_on_its_own(tmp_path: Path) -> None:
    for i in range(4):
        write_skab(tmp_path / "valve1" / f"{i}.csv", seed=10 + i)
    write_skab(tmp_path / "anomaly-free" / "anomaly-free.csv", 9, anomaly=False)
    result = run("eval", "skab", "--data", str(tmp_path), "--cv", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    held = figures["cross_validated"]
    assert list(held["halves"]) == ["valve1/0-1", "valve1/2-3"]
    assert held["halves"]["valve1/0-1"]["files"] == ["valve1/0.csv", "valve1/1.csv"]
    assert all(h["test_rows"] == 2 * (ROWS - TRAIN_ROWS) for h in held["halves"].values())
    # nothing is chosen on SKAB files: both halves pooled are the in-sample figures
    assert held["fitted"]["chosen_on_skab_files"] == []
    assert {k: held[k] for k in ("f1", "far_percent", "mar_percent", "test_rows")} == {
        k: figures[k] for k in ("f1", "far_percent", "mar_percent", "test_rows")
    }
    # each half's figures are those of its files alone
    alone = Confusion()
    for i in (2, 3):
        alone.add(*run_file(tmp_path / "valve1" / f"{i}.csv"))
    assert held["halves"]["valve1/2-3"] == {
        **alone.metrics(),
        "files": ["valve1/2.csv", "valve1/3.csv"],
        "test_rows": alone.rows,
    }
