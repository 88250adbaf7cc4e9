"""``eval rul`` and ``eval cmapss-csv`` on small synthetic files the tests make."""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from twin_stream.cli.eval_rul import register
from twin_stream.devtools.evaluation.cmapss import convert_cmapss
from twin_stream.devtools.evaluation.rul import evaluate_rul, nasa_score
from twin_stream.devtools.evaluation.rul_files import read_truth
from twin_stream.errors import DatasetError

T0 = datetime(2000, 1, 1, tzinfo=UTC)


def _write(path: Path, units: list[tuple[str, int, int]], seed: int) -> None:
    """Each unit (name, life, rows kept): hourly rows, drifting over its last 100 h."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts", "device_id", "temp", "pressure"])
        for name, life, rows in units:
            for t in range(rows):
                wear = max(0.0, math.exp(0.03 * (t - (life - 100))) - 1.0)
                w.writerow(
                    [
                        (T0 + timedelta(hours=t)).isoformat(),
                        name,
                        f"{50 + wear + rng.gauss(0, 0.5):.4f}",
                        f"{10 - 0.2 * wear + rng.gauss(0, 0.1):.4f}",
                    ]
                )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    train = [(f"unit-{k:02d}", 200 + 10 * k, 200 + 10 * k) for k in range(10)]
    test = [(f"live-{k:02d}", 230 + 7 * k, 230 + 7 * k - (10 + 12 * k)) for k in range(6)]
    _write(tmp_path / "train.csv", train, 1)
    _write(tmp_path / "test.csv", test, 2)
    with open(tmp_path / "truth.csv", "w") as f:
        f.write("device_id,rul_h\n")
        for name, life, rows in test:
            f.write(f"{name},{life - rows + 1}\n")  # failure one hour after the last life hour
    return {
        "train": tmp_path / "train.csv",
        "test": tmp_path / "test.csv",
        "truth": tmp_path / "truth.csv",
        "dir": tmp_path,
    }


def test_learns_from_train_and_predicts_each_test_unit(files: dict[str, Path]) -> None:
    result = evaluate_rul(
        files["train"], files["test"], truth=files["truth"], plot=files["dir"] / "plot.html"
    )
    assert result["failures_learned"] == 10 and len(result["predictions"]) == 6
    s = result["score"]
    assert s["scored"] == 6 and s["rmse_h"] < 30.0
    assert s["paged_early"] == 0 and s["near_failure_units"] == 4 and s["near_failure_paged"] >= 3
    assert all(result["stages"][f"live-0{k}"] >= 1 for k in range(3))
    assert "<svg" in (files["dir"] / "plot.html").read_text()


def test_truth_one_number_per_line_in_device_order(files: dict[str, Path]) -> None:
    lines = files["truth"].read_text().splitlines()[1:]
    plain = files["dir"] / "plain.txt"
    plain.write_text("\n".join(line.split(",")[1] for line in lines) + "\n")
    assert read_truth(plain, [line.split(",")[0] for line in lines]) == read_truth(
        files["truth"], [line.split(",")[0] for line in lines]
    )
    with pytest.raises(DatasetError, match="values for"):
        read_truth(plain, ["a"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: [[c if c != "ts" else "time" for c in rows[0]], *rows[1:]], "no time column"),
        (
            lambda rows: [rows[0], rows[1][:2] + ["warm", rows[1][3]], *rows[2:]],
            "device unit-00, row 2: temp = 'warm' is not a number",
        ),
        (lambda rows: rows[:15], "device unit-00, rows 2-15: 14 rows do not complete"),
    ],
)
def test_bad_input_is_one_error_naming_file_device_and_row(
    files: dict[str, Path], edit: object, message: str
) -> None:
    with open(files["train"], newline="") as f:
        rows = list(csv.reader(f))
    bad = files["dir"] / "bad.csv"
    with open(bad, "w", newline="") as f:
        csv.writer(f).writerows(edit(rows))  # type: ignore[operator]
    with pytest.raises(DatasetError, match=message) as info:
        evaluate_rul(bad, files["test"])
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_nasa_score_penalises_late_more_than_early() -> None:
    assert nasa_score(0.0) == 0.0 and nasa_score(10.0) > nasa_score(-10.0) > 0


def test_cli_json_and_one_line_error(files: dict[str, Path]) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        pass

    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "rul",
            "--train",
            str(files["train"]),
            "--test",
            str(files["test"]),
            "--truth",
            str(files["truth"]),
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.stdout.strip().splitlines()[-1])
    assert set(out["predictions"]["live-00"]) == {"rul_h", "low_h", "high_h"}
    bad = runner.invoke(app, ["rul", "--train", str(files["truth"]), "--test", str(files["test"])])
    assert bad.exit_code == 1 and "no time column" in bad.output


def test_cmapss_csv_splits_odd_and_even_units(tmp_path: Path) -> None:
    rows = []
    for unit in (1, 2, 3):
        for cycle in range(1, 4):
            rows.append(" ".join([str(unit), str(cycle)] + ["1.5"] * 24))
    (tmp_path / "test_FD003.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "RUL_FD003.txt").write_text("10\n20\n30\n")
    result = convert_cmapss(tmp_path, tmp_path / "out")
    assert result["odd"]["devices"] == 2 and result["even"]["rows"] == 3
    with open(tmp_path / "out" / "odd.csv", newline="") as f:
        odd = list(csv.DictReader(f))
    assert odd[0]["device_id"] == "engine-001" and odd[0]["ts"] == "2000-01-01T01:00:00Z"
    truth = (tmp_path / "out" / "even-truth.csv").read_text().splitlines()
    assert truth == ["device_id,rul_h", "engine-002,20"]
    (tmp_path / "RUL_FD003.txt").write_text("10\n20\n")
    with pytest.raises(DatasetError, match="2 lines for 3 units"):
        convert_cmapss(tmp_path, tmp_path / "out")
