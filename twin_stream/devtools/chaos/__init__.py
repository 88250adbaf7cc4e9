"""``twin-stream chaos``: faults injected into the running platform, one at a time, under a
steady simulated load, and every reading counted by device and seq (issue 14, item 2).

One job per module:

* ``faults``: the faults, in the run's order, and what each one does;
* ``platform``: the local stack and the pipeline's processes, each killable and restartable;
* ``collector``: the scores, alerts and telemetry records read live off Kafka;
* ``tsdb``: the telemetry points read back from InfluxDB;
* ``counting``: lost, duplicated, orphaned and the recovery clock, from lists (pure);
* ``options``: a run's options, the fleet it simulates and the command that repeats it;
* ``live``: the live part of a run: the baseline, each fault and the drain;
* ``figures``: each window's counts, from what the run recorded and read back;
* ``run``: one run, start to end (:func:`run_chaos`).

The figures of the full run are in RELIABILITY.md.
"""

from __future__ import annotations

from twin_stream.devtools.chaos.faults import DEFAULT_FAULTS, FAULTS, FaultTiming, fault_names
from twin_stream.devtools.chaos.options import ChaosOptions, chaos_command
from twin_stream.devtools.chaos.run import run_chaos

__all__ = [
    "DEFAULT_FAULTS",
    "FAULTS",
    "ChaosOptions",
    "FaultTiming",
    "chaos_command",
    "fault_names",
    "run_chaos",
]
