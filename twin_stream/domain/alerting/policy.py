"""The alert policy of one device: its feeds of each kind of condition merged into one set of
alerts, what is open and what was resolved, people's actions on them, and maintenance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from twin_stream.domain import alert_lifecycle as lifecycle
from twin_stream.domain.alerting.anomaly import AnomalyConditions
from twin_stream.domain.alerting.connectivity import ConnectivityConditions
from twin_stream.domain.alerting.data_quality import QualityConditions
from twin_stream.domain.alerting.params import UNVERSIONED
from twin_stream.domain.alerting.predicted_failure import PredictionConditions
from twin_stream.domain.detection.state import restore_attributes
from twin_stream.domain.events import Alert

__all__ = ["AlertPolicy"]


@dataclass
class AlertPolicy(
    AnomalyConditions, PredictionConditions, QualityConditions, ConnectivityConditions
):
    """The alert state of one device (see :mod:`twin_stream.domain.alerting`): its fields are
    :class:`~twin_stream.domain.alerting.merge.PolicyCore`'s, its feeds those of each kind of
    condition (``on_score``, ``on_prediction``, ``on_health``, ``on_quality``,
    ``on_telemetry``, ``on_connectivity``) and :meth:`on_maintenance`.

    ``version`` is saved with the pickle: ``AlertPolicy.version`` is the class's,
    ``policy.version`` the one the state was made with (``ts-policy/1`` for a pickle older
    than versions).
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A pickle from before the alert lifecycle (issue 13) has no history and no paging
        # marks, and its alerts lack the lifecycle's fields (pydantic restores only the saved
        # ones): they get their defaults. The counters mean what they meant: same version.
        restore_attributes(self, {"version": UNVERSIONED, "resolved": b"", "paged": {}, **state})
        for slot in self.slots.values():
            if slot.alert is not None and "ack" not in slot.alert.__dict__:
                slot.alert = Alert.model_validate(dict(slot.alert.__dict__))

    # -- what is open ---------------------------------------------------------------------------

    def open_alerts(self) -> list[Alert]:
        """The latest event of every open alert."""
        return [s.alert for s in self.slots.values() if s.alert is not None]

    def history(self) -> list[Alert]:
        """The last event of the resolved alerts kept, newest first."""
        return lifecycle.recall(self.resolved)

    def alerts(self) -> list[Alert]:
        """The latest event of every open alert, then of the resolved ones kept (history)."""
        return self.open_alerts() + self.history()

    def find(self, alert_id: str) -> Alert | None:
        """The latest event of one alert, open or in the history; None if unknown here."""
        return next((a for a in self.alerts() if a.alert_id == alert_id), None)

    # -- people's part: acknowledge, shelve, return, re-notify (domain.alert_lifecycle) ---------

    def act(
        self, action: lifecycle.AlertAction, *, max_shelve_minutes: float
    ) -> Alert | lifecycle.Refused:
        """Apply a person's action to one of this device's alerts: its next event (kept as the
        alert's latest), or why not (unknown, resolved, acknowledged already, too long)."""
        slot = next(
            (s for s in self.slots.values() if s.alert and s.alert.alert_id == action.alert_id),
            None,
        )
        if slot is None or slot.alert is None:
            if any(a.alert_id == action.alert_id for a in self.history()):
                return lifecycle.Refused("conflict", f"alert {action.alert_id} is resolved")
            return lifecycle.Refused("unknown", f"no alert {action.alert_id} on {self.device_id}")
        event = lifecycle.apply(slot.alert, action, max_shelve_minutes=max_shelve_minutes)
        if isinstance(event, Alert):
            slot.alert = event
        return event

    def on_clock(self, now: datetime, renotify_every: timedelta | None) -> list[Alert]:
        """The wall clock's turn (``now``): shelved alerts whose time is over return, and
        critical alerts that page unacknowledged are re-notified every ``renotify_every``."""
        events = []
        for slot in self.slots.values():
            if slot.alert is None:
                continue
            alert_id = slot.alert.alert_id
            event, mark = lifecycle.tick(slot.alert, self.paged.get(alert_id), now, renotify_every)
            if mark is not None:
                self.paged[alert_id] = mark
            if event is not None:
                slot.alert = event
                events.append(event)
        return events

    # -- maintenance -----------------------------------------------------------------------------

    def on_maintenance(self, ts: datetime) -> list[Alert]:
        """Maintenance was done (``maintenance_done``, a part replaced): resolve the device's
        anomaly and predicted-failure alerts, and page nobody about its new normal for
        ``maintenance_quiet_readings`` readings."""
        self.quiet = self.params.maintenance_quiet_readings
        events: list[Alert] = []
        for c in self.conditions.values():
            if c.kind in ("anomaly", "predicted_failure"):
                c.reset()
        for key in [k for k in self.slots if k.startswith("fault:")]:
            events += self._sync(key, ts, self.last_seq, f"maintenance done at {ts.isoformat()}")
        return events
