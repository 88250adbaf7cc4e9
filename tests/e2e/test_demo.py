"""The main job: a short `twin-stream demo` (90 s, clock x160) from the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.services


def test_a_short_demo_exits_0_writes_the_report_and_catches_the_failing_pump(
    tmp_path: Path,
) -> None:
    report, workdir = tmp_path / "report.html", tmp_path / "work"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin_stream",
            "demo",
            "--devices",
            "10",
            "--duration",
            "90",
            "--speed",
            "160",
            "--rate",
            "10",
            "--report",
            str(report),
            "--workdir",
            str(workdir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "140"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert {
        "faulty_devices",
        "alerted_devices",
        "precision",
        "recall",
        "report",
        "msgs_per_s",
    } <= set(summary)
    # The showcase pump wears out during the run and must be caught before the end.
    assert "pump-0001" in summary["faulty_devices"]
    assert "pump-0001" in summary["alerted_devices"]
    assert summary["published"] > 0 and summary["scored"] == summary["published"]
    assert 0.0 < summary["precision"] <= 1.0 and 0.0 < summary["recall"] <= 1.0
    # The report is one self-contained page that shows the pump among the alerted devices.
    assert Path(summary["report"]) == report.resolve()
    page = report.read_text()
    assert "<h2>pump-0001 (infusion_pump)</h2>" in page
    assert "plotly" in page and "<script src=" not in page  # plotly.js inlined, no CDN
    # The live view was shown (on stderr, since stdout carries the JSON).
    assert "Open alerts" in result.stderr and "Pipeline" in result.stderr
    # The twin API is guarded: the demo made its own admin token and said how to use it; the
    # tokens file holds its hash only.
    assert "Authorization: Bearer tsk_" in result.stderr
    token = result.stderr.split("Authorization: Bearer ", 1)[1].split("'", 1)[0]
    stored = (workdir / "api-tokens.json").read_text()
    assert '"name": "demo"' in stored and token not in stored
    # Nothing of the run is left running.
    leftovers = subprocess.run(
        ["pgrep", "-f", str(workdir)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == []
