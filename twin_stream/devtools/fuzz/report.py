"""The report: what became of everything a run sent (:class:`FuzzReport`, filled in by
:mod:`~twin_stream.devtools.fuzz.verdicts`), and the figures the command prints, with whether it
passed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from twin_stream.bridge.routing import MAX_LETTER_PAYLOAD_BYTES
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.fuzz.probe import CATEGORIES, DEAD_LETTERED
from twin_stream.devtools.fuzz.processes import Watched
from twin_stream.domain.messages import MAX_PAYLOAD_BYTES

__all__ = ["FuzzReport", "figures"]


def _zero() -> dict[str, int]:
    return {"sent": 0, "dead_lettered": 0, "refused": 0, "lost": 0, "leaked": 0, "wrong_rule": 0}


@dataclass
class FuzzReport:
    """What became of everything a run sent."""

    categories: dict[str, dict[str, int]] = field(
        default_factory=lambda: {c: _zero() for c in CATEGORIES}
    )
    #: valid readings: sent, arrived as expected, missing, duplicated, altered, out of order
    valid: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("sent", "arrived", "missing", "duplicates", "altered", "out_of_order", "not_acked"),
            0,
        )
    )
    #: dead letters that answer no probe (of a message sent before the run, say)
    unexpected_letters: int = 0
    #: examples of what went wrong, a few of each kind
    problems: dict[str, list[str]] = field(default_factory=dict)
    publish_s: float = 0.0
    drain_s: float = 0.0
    messages_per_s: float = 0.0
    broker_max_packet_size: int | None = None
    largest_payload: int = 0

    def note(self, kind: str, what: str) -> None:
        examples = self.problems.setdefault(kind, [])
        if len(examples) < 5:
            examples.append(what[:300])

    def totals(self) -> dict[str, int]:
        total = _zero()
        for row in self.categories.values():
            for key, value in row.items():
                total[key] += value
        return total

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bad"] = self.totals()
        return data


def figures(
    report: FuzzReport,
    services: Sequence[Watched],
    count: int,
    devices: int,
    rate: float,
    seed: int,
    drawn_s: float,
) -> dict[str, Any]:
    """The command's figures: the run's settings, ``report``, the services' crashes and the
    bridge's own counters, and whether it passed."""
    crashes = [c for s in services for c in s.crashes()]
    bad, valid = report.totals(), report.valid
    bridge_log = services[0].log.read_text(errors="replace") if services else ""
    stopped = re.search(r"(\d+) received, (\d+) forwarded, (\d+) dead-lettered", bridge_log)
    return {
        "count": count,
        "devices": devices,
        "rate": rate,
        "seed": seed,
        "draw_s": round(drawn_s, 1),
        **report.to_json(),
        # every bad payload dead-lettered (right rule) or refused, every valid reading arrived
        # once and in order, no crash
        "passed": not crashes
        and bad["lost"] == bad["leaked"] == bad["wrong_rule"] == 0
        and valid["arrived"] == valid["sent"]
        and valid["duplicates"] == valid["out_of_order"] == 0,
        "crashes": len(crashes),
        "crash_details": crashes,
        "services": {s.name: s.summary() for s in services},
        "bridge_counters": dict(
            zip(("received", "forwarded", "dead_lettered"), map(int, stopped.groups()), strict=True)
        )
        if stopped
        else None,
        "limits": {
            "bridge_payload_bytes": MAX_PAYLOAD_BYTES,
            "letter_payload_bytes": MAX_LETTER_PAYLOAD_BYTES,
            "broker_max_packet_size": report.broker_max_packet_size,
        },
        "dead_lettered_categories": list(DEAD_LETTERED),
        "machine": machine_info(),
    }
