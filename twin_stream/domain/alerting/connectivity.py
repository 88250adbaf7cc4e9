"""Connectivity conditions: a device going offline opens a warning (lost monitoring); a birth
message or any telemetry resolves it."""

from __future__ import annotations

from datetime import datetime

from twin_stream.domain.alerting.merge import PolicyCore
from twin_stream.domain.events import Alert

__all__ = ["ConnectivityConditions"]


class ConnectivityConditions(PolicyCore):
    """The policy's connectivity feeds (:meth:`on_telemetry`, :meth:`on_connectivity`)."""

    def on_telemetry(self, ts: datetime, seq: int) -> list[Alert]:
        """Every reading, warming up or not: counts readings and ends an offline alert (the
        device is evidently sending, birth message or not)."""
        self._tick(seq, ts)
        return self._resume(ts, seq)

    def on_connectivity(self, ts: datetime, online: bool) -> list[Alert]:
        """A device going offline (a will, a missed heartbeat) opens an alert; coming back
        (a birth message, or any telemetry: :meth:`on_telemetry`) resolves it."""
        c = self._condition("offline", "offline")
        if not online and not c.active:
            self._activate(c, "offline")
            c.seq_first = self.last_seq
            # A technical alarm of lost monitoring: medium priority (IEC 60601-1-8).
            c.peak = c.severity = "warning"
            c.text, c.signature = "device offline", "offline"
            return self._sync("offline", ts, self.last_seq)
        if online and c.active:
            c.reset()
            return self._sync("offline", ts, self.last_seq, "device back online")
        return []
