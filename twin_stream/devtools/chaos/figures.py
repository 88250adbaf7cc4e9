"""A chaos run's figures: each window's readings and alerts counted (:mod:`.counting`) from
what the run recorded and read back, with the load and the command that repeats it."""

from __future__ import annotations

from typing import Any

from twin_stream.devtools.chaos.counting import (
    AlertEvent,
    by_window,
    condition_key,
    count_readings,
    counts_of,
    recovery_time,
    unsent_in_window,
    window_readings,
)
from twin_stream.devtools.chaos.counting import alert_findings as find_alert_issues
from twin_stream.devtools.chaos.live import FaultRun
from twin_stream.devtools.chaos.options import ChaosOptions, chaos_command

__all__ = ["chaos_figures"]


def _alert_brief(event: AlertEvent, starts: list[float], runs: list[FaultRun]) -> dict[str, Any]:
    """One alert event, short: its condition, its seqs and the window it arrived in."""
    a = event.alert
    i = next((k for k in range(len(starts) - 1, -1, -1) if event.arrived >= starts[k]), -1)
    window = "baseline" if i < 0 else runs[i].fault.name if i < len(runs) else "after"
    return {
        "alert_id": event.alert_id,
        "condition": "/".join(condition_key(a)),
        "state": event.state,
        "seq_first": a.get("seq_first"),
        "seq_last": a.get("seq_last"),
        "opened_at": a.get("opened_at"),
        "window": window,
    }


def chaos_figures(
    options: ChaosOptions,
    runs: list[FaultRun],
    *,
    seqs: dict[str, list[int]],
    scored: Any,
    scores: dict[str, list[tuple[float, int]]],
    stored: Any,
    relayed: Any,
    alerts: list[AlertEvent],
    open_now: set[str] | None,
    stopped_at: float,
    exits: list[tuple[float, str, int | None]],
) -> dict[str, Any]:
    """Each window's counts, from what the run recorded and read back."""
    found = find_alert_issues(alerts, open_now or set())
    starts = [r.window_start for r in runs] + [stopped_at]
    opened = by_window((e.arrived for e in found.opened), starts)
    duplicated = by_window((e.arrived for e in found.duplicates), starts)
    repeated = by_window((e.arrived for e in found.repeated), starts)
    orphaned = by_window((e.arrived for e in found.orphaned), starts)
    final = counts_of(seqs)

    def readings(start: dict[str, int], end: dict[str, int]) -> dict[str, Any]:
        count = count_readings(window_readings(seqs, start, end), scored, stored, relayed)
        return {
            "published": count.published,
            "scored": count.scored,
            "stored": count.stored,
            "lost": count.lost,
            "duplicates": count.duplicates,
            "lost_unscored": count.lost_unscored,
            "lost_unstored": count.lost_unstored,
            "lost_before_kafka": count.lost_before_kafka,
            "duplicate_scores": count.duplicate_scores,
            "redelivered": count.redelivered,
            "not_sent": unsent_in_window(seqs, start, end),
            "lost_examples": [list(r) for r in count.lost_readings],
        }

    faults = []
    for i, r in enumerate(runs):
        end = runs[i + 1].start_counts if i + 1 < len(runs) else final
        row = {"fault": r.fault.name, **readings(r.start_counts, end)}
        recovery = recovery_time(r.ended, r.targets, scores)
        row.update(
            {
                "duplicate_alerts": duplicated[i],
                "repeated_alert_opens": repeated[i],
                "orphaned_alerts": orphaned[i] if open_now is not None else None,
                "alerts_opened": opened[i],
                "recovery_s": recovery,
                "stored_recovery_s": r.stored_recovery_s,
                "ready_s": r.ready_s,
                "fault_s": round(r.ended - r.began, 1),
                "window_s": round(
                    (runs[i + 1].window_start if i + 1 < len(runs) else stopped_at)
                    - r.window_start,
                    1,
                ),
                "devices_waited_for": len(r.targets),
                "rss_mb": r.rss_mb,
                "does": r.fault.does,
                "command": chaos_command(options, r.fault.name),
                "exits": [
                    f"{name} found exited by itself (code {code}) {at - r.ended:+.1f} s from "
                    "the end of the fault; started again"
                    for at, name, code in exits
                    if starts[i] <= at < starts[i + 1]
                ],
            }
        )
        if r.fault.restarts_worker:
            row["recovery_target_s"] = options.worker_target_s
        faults.append(row)
    first = runs[0].start_counts if runs else final
    baseline = {
        **readings({}, first),
        "duplicate_alerts": duplicated[-1],
        "orphaned_alerts": orphaned[-1] if open_now is not None else None,
        "alerts_opened": opened[-1],
    }
    after = len(runs)
    return {
        "faults": faults,
        "baseline": baseline,
        "after_the_fleet_stopped": {
            "alerts_opened": opened[after],
            "duplicate_alerts": duplicated[after],
            "orphaned_alerts": orphaned[after] if open_now is not None else None,
        },
        "alerts": {
            "events": len(alerts),
            "opened": len(found.opened),
            "duplicates": len(found.duplicates),
            "redelivered_events": len(found.redelivered),
            "orphaned": len(found.orphaned) if open_now is not None else None,
            "open_at_the_end": len(open_now) if open_now is not None else None,
            "duplicate_ids": [e.alert_id for e in found.duplicates][:10],
            "orphaned_ids": [e.alert_id for e in found.orphaned][:10],
            # What to read when one is found: which device, condition and window.
            "duplicate_events": [_alert_brief(e, starts, runs) for e in found.duplicates][:10],
            "orphaned_events": [_alert_brief(e, starts, runs) for e in found.orphaned][:10],
        },
        "load": {
            "devices": options.devices,
            "rate": options.rate,
            "rate_per_device_hz": round(options.rate_hz, 3),
            "speed": options.speed,
            "fault_fraction": options.fault_fraction,
            "seed": options.seed,
        },
        "kill_pause_s": options.timing.kill_pause_s,
        "outage_s": options.timing.outage_s,
        "settle_s": options.settle_s,
        "command": chaos_command(options),
    }
