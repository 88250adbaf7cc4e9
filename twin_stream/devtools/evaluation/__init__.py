"""Evaluations behind ``twin-stream eval``, each running :class:`DeviceMonitor`, production's
per-device path, with one parameter set:

* ``nab`` (with ``nab_scoring``, NAB's own scoring rules): the Numenta Anomaly Benchmark;
* ``skab``: the Skoltech Anomaly Benchmark under its protocol (400 training rows);
* ``fleet``: precision, recall and lead time on the simulated fleet;
* ``replay``: the detector and policy over a user's own CSV history.
"""

from __future__ import annotations

from twin_stream.devtools.evaluation.fleet import evaluate_fleet
from twin_stream.devtools.evaluation.nab import evaluate_nab
from twin_stream.devtools.evaluation.replay import replay_csv
from twin_stream.devtools.evaluation.skab import evaluate_skab

__all__ = ["evaluate_fleet", "evaluate_nab", "evaluate_skab", "replay_csv"]
