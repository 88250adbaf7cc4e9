"""``twin-stream bench profile-worker``: where a worker's time goes, by py-spy.

A local Kafka, a telemetry backlog, and ``twin-stream worker`` run under ``py-spy record --idle
--threads`` until its consumer group has committed every reading; the result is py-spy's raw
(collapsed) stacks and a summary: the share of the main thread's samples per function, counted
once per stack (inclusive) and as the innermost frame (self).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from twin_stream.devtools.bench.pipeline import _load_backlog
from twin_stream.devtools.bench.readback import wait_for_consumed
from twin_stream.devtools.stack import Stack, free_port
from twin_stream.devtools.stack.harness import ManagedProcess, twin_stream_argv
from twin_stream.domain.topics import kafka_topics
from twin_stream.errors import ServiceBinaryMissing
from twin_stream.kafka import ensure_topics

__all__ = ["profile_worker", "summarise"]


def summarise(raw: Path, thread: str = "MainThread", top: int = 10) -> dict[str, Any]:
    """Inclusive and self shares (%) of ``thread``'s samples in py-spy's raw output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if thread not in frames[0]:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for name in {f.split(":")[0] + ")" if ":" in f else f for f in frames[1:]}:
            inclusive[name] += n
    # The frames on every stack (the command's entry down to the event loop) say nothing.
    spread = [(k, v) for k, v in inclusive.most_common() if v < 0.95 * total]
    share = {
        "inclusive": {k: round(100 * v / total, 1) for k, v in spread[:top]},
        "self": {k: round(100 * v / total, 1) for k, v in own.most_common(top)},
    }
    return {"samples": total, **share}


def profile_worker(out: Path, *, devices: int = 50, per_device: int = 1200) -> dict[str, Any]:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise ServiceBinaryMissing("profile", "py-spy", "pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="twin-profile-") as tmp:
        root = Path(tmp)
        stack = Stack(root / "stack", services=["kafka"])
        state = stack.up()
        try:
            bootstrap = state.url("kafka")
            topics = kafka_topics("prof")
            ensure_topics(bootstrap, 6, {}, topics)
            total = _load_backlog(bootstrap, topics["telemetry"], devices, per_device)
            command = [
                py_spy, "record", "--idle", "--threads", "-r", "200", "--format", "raw",
                "-o", str(out), "--",
                *twin_stream_argv(["worker", "--web-port", str(free_port())]),
                "--data-dir", str(root / "w"), "--topic-prefix", "prof",
            ]  # fmt: skip
            env = {"TWIN_KAFKA__BOOTSTRAP": bootstrap}
            worker = ManagedProcess("py-spy", command, root / "worker.log", env=env).start()
            try:
                consumed = wait_for_consumed(
                    bootstrap, "prof-worker", topics["telemetry"], total, 600
                )
            finally:
                # SIGINT, as a terminal's Ctrl-C: py-spy stops the worker and writes its samples.
                worker.stop(120, sig=signal.SIGINT)
        finally:
            stack.down()
    return {"events": total, "consumed": consumed, "raw": str(out), **summarise(out)}
