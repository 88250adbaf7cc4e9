"""A run's probes, the same for the same seed: the edge probes, then hypothesis's draw."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from twin_stream.devtools.fuzz.edges import edge_probes
from twin_stream.devtools.fuzz.probe import CATEGORIES, Device, Probe
from twin_stream.devtools.fuzz.strategies import probe_strategy

__all__ = ["draw", "probes"]


def probes(
    devices: Sequence[Device],
    now: datetime,
    count: int,
    seed: int,
    categories: Sequence[str] = CATEGORIES,
) -> list[Probe]:
    """``count`` probes of ``categories``: the :func:`edge_probes`, then hypothesis's draw.

    The draw is the same for the same seed in the same program; hypothesis (6.131 on) also
    draws constants from the modules loaded, so another set of loaded modules may draw others.
    """
    edges = edge_probes(devices, now, categories)[:count]
    return edges + draw(probe_strategy(devices, now, categories), count - len(edges), seed)


def draw(strategy: st.SearchStrategy[Any], count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy`` (hypothesis's own generation, with its bias towards
    edge cases, run outside a test), the same ones for the same seed (see :func:`probes`)."""
    drawn: list[Any] = []
    attempt = 0
    while len(drawn) < count:

        @hypothesis_seed(seed * 1_000 + attempt)
        @settings(
            max_examples=count - len(drawn),
            phases=(Phase.generate,),
            database=None,
            deadline=None,
            derandomize=False,
        )
        @given(strategy)
        def collect(example: Any) -> None:
            drawn.append(example)

        collect()
        attempt += 1
    return drawn[:count]
