"""``twin-stream fuzz``: bad input for the bridge (malformed, oversized, wrongly typed,
NaN/infinite, future- or past-stamped and wrong-topic payloads) sent through the real bridge at
load, a valid reading after each, and what became of every one of them counted.

One job per module, the probes first (pure: built from the fleet and the platform's clock):

* ``probe``: what a probe is, its categories and the fate each is owed (dead-lettered by the
  bridge, or refused by the broker);
* ``payload``: a message as bytes and as fields (raw ``NaN`` tokens, field paths, padding);
* ``valid``: valid messages of each channel, the base every defect is put into;
* ``strategies``: the payload strategies, one defect or forbidden topic per category;
* ``edges``: the edge probes every run has, whatever hypothesis draws;
* ``draw``: a run's probes, the same for the same seed;

then the run, against real services:

* ``client``: one device's MQTT v5 connection and the PUBACK of each message it sent;
* ``processes``: a ``twin-stream`` service run as a process, and whether it crashed;
* ``send``: the probes and valid readings published, paced to a rate;
* ``verdicts``: what the bridge wrote to Kafka, read back and counted against what was sent;
* ``report``: the counts (:class:`FuzzReport`) and the command's figures;
* ``run``: :func:`run_fuzz` (any broker and Kafka with a bridge between them) and
  :func:`fuzz_stack` (on a local stack of its own: the command).

The figures of the full run are in RELIABILITY.md.

>>> from datetime import datetime, timezone
>>> from twin_stream.bridge.routing import route
>>> now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> probes = draw(probe_strategy(fleet(3), now), 40, seed=1)
>>> len(probes), all(p.refused or route(p.topic, p.payload, now=now).reason for p in probes)
(40, True)
"""

from __future__ import annotations

from twin_stream.devtools.fuzz.client import Broker
from twin_stream.devtools.fuzz.draw import draw, probes
from twin_stream.devtools.fuzz.edges import edge_probes
from twin_stream.devtools.fuzz.probe import CATEGORIES, DEAD_LETTERED, REFUSED, Device, Probe, fleet
from twin_stream.devtools.fuzz.processes import Watched, watched
from twin_stream.devtools.fuzz.report import FuzzReport
from twin_stream.devtools.fuzz.run import fuzz_stack, run_fuzz
from twin_stream.devtools.fuzz.strategies import probe_strategy

__all__ = [
    "CATEGORIES",
    "DEAD_LETTERED",
    "REFUSED",
    "Broker",
    "Device",
    "FuzzReport",
    "Probe",
    "Watched",
    "draw",
    "edge_probes",
    "fleet",
    "fuzz_stack",
    "probe_strategy",
    "probes",
    "run_fuzz",
    "watched",
]
