"""`bench profile-worker`'s summary of py-spy's raw stacks."""

from __future__ import annotations

from pathlib import Path

from twin_stream.devtools.bench.profile import summarise


def test_shares_are_per_thread_inclusive_once_per_stack_and_self_by_leaf(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "thread (1): MainThread;main (m.py:1);loop (l.py:2);score (d.py:3);pca (p.py:4) 6\n"
        "thread (1): MainThread;main (m.py:1);loop (l.py:2);score (d.py:3);score (d.py:9) 2\n"
        "thread (1): MainThread;main (m.py:1);loop (l.py:2);poll (k.py:5) 2\n"
        "thread (2): Thread-1;fetch (f.py:1) 50\n"
    )
    summary = summarise(raw, top=3)
    assert summary["samples"] == 10  # the other thread's samples are not counted
    # main and loop are on every stack: left out; score counts once in a recursive stack
    assert summary["inclusive"] == {"score (d.py)": 80.0, "pca (p.py)": 60.0, "poll (k.py)": 20.0}
    assert summary["self"] == {"pca (p.py:4)": 60.0, "score (d.py:9)": 20.0, "poll (k.py:5)": 20.0}
