"""Events the platform produces about devices: commands, anomaly scores, predictions and
alerts (what it records, twins' views, lifecycle events, fleet lessons, dead letters and the
audit trail, is :mod:`twin_stream.domain.records`).

These travel on internal Kafka topics (``twin.commands``, ``twin.scores``, ``twin.predictions``,
``twin.alerts``). Each score and alert carries the seq range of the
readings behind it and the detector's version, so that an alert can be traced back to its data
and its model. The models here are the schemas of those topics: the sink decodes every record
with one of them (:mod:`twin_stream.sink.points`), and the tests check that what each producer
writes validates against its model.

>>> from datetime import datetime, timezone
>>> now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
>>> cmd = Command.create("pump-0001", "set_rate", 120.0, now=now, command_id="cmd-00000001")
>>> cmd.desired.as_dict(), cmd.expires_at.isoformat()
({'rate': 120.0}, '2026-11-25T12:00:00+00:00')
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal, Protocol

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from twin_stream.domain.messages import DesiredSettings
from twin_stream.domain.topics import DEVICE_ID_PATTERN

__all__ = [
    "COMMAND_TTL",
    "PAGING_SEVERITIES",
    "Alert",
    "AlertAck",
    "AlertShelf",
    "AlertState",
    "AlertKind",
    "AnomalyScore",
    "Command",
    "CommandKind",
    "Contribution",
    "ContributionLike",
    "Prediction",
    "PredictionRecord",
    "ScoreRecord",
    "SignalContribution",
    "Severity",
]

#: A command not applied within this time is dropped by the device (it acks 'expired').
COMMAND_TTL: Final = timedelta(hours=24)

#: What a command does: an operator's verb, or ``withdraw`` (the worker takes rejected or
#: expired changes back out of the device's desired state).
CommandKind = Literal[
    "set_rate", "set_sample_interval", "maintenance_done", "set_desired", "withdraw"
]
Severity = Literal["info", "warning", "critical"]
AlertKind = Literal["anomaly", "predicted_failure", "offline", "data_quality"]
#: ``open`` starts an alert, ``updated`` changes its severity or its text (same ``alert_id``, next
#: ``revision``), ``resolved`` ends it. People's part of its life (IEC 60601-1-8's acknowledge,
#: and shelving: :mod:`twin_stream.domain.alert_lifecycle`) adds ``acknowledged``, ``shelved``,
#: ``unshelved`` (the shelf time ended: it shows, and pages if it still should) and
#: ``renotified`` (an unacknowledged critical alert paging again).
AlertState = Literal[
    "open", "updated", "resolved", "acknowledged", "shelved", "unshelved", "renotified"
]
#: The severities that notify a person. ``info`` never pages: it is IEC 60601-1-8's
#: "information signal" (shown, not announced), while ``warning`` and ``critical`` are its
#: medium and high priority alarm conditions (prompt and immediate response).
PAGING_SEVERITIES: Final[frozenset[str]] = frozenset({"warning", "critical"})
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

#: The config of every event and record model: no unknown field, immutable, no NaN.
EVENT_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Command(BaseModel):
    """A change of desired state for one device, as issued by the twin API or an operator
    (on ``twin.commands``: ``desired`` holds the settings to change), or the device's whole
    desired document that the worker made of it (on ``twin.desired``: ``desired`` holds every
    desired setting, ``twin_version`` the version it is at), which the bridge delivers."""

    model_config = EVENT_CONFIG

    command_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{8,64}$")]
    device_id: DeviceId
    kind: CommandKind
    desired: DesiredSettings
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    twin_version: Annotated[int, Field(ge=0)] = 0  # the twin version this command creates
    #: The twin version the change was made against (the API's ``If-Match``): the worker
    #: refuses it if the twin is at another one. None: whatever the version.
    if_match: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _expires_after_issue(self) -> Command:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self

    @classmethod
    def create(
        cls,
        device_id: str,
        kind: CommandKind,
        value: float | None = None,
        *,
        now: datetime,
        maintenance_epoch: int = 0,
        desired: DesiredSettings | None = None,
        command_id: str | None = None,
        ttl: timedelta = COMMAND_TTL,
    ) -> Command:
        """Build a command from an operator's verb.

        ``maintenance_done`` needs the device's current ``maintenance_epoch`` and asks for the
        next one; ``set_desired`` takes a full ``desired``.
        """
        if kind == "set_rate":
            desired = DesiredSettings(rate=value)
        elif kind == "set_sample_interval":
            desired = DesiredSettings(sample_interval_s=value)
        elif kind == "maintenance_done":
            desired = DesiredSettings(maintenance_epoch=maintenance_epoch + 1)
        elif desired is None:
            raise ValueError("set_desired needs desired settings")
        return cls(
            command_id=command_id or uuid.uuid4().hex,
            device_id=device_id,
            kind=kind,
            desired=desired,
            issued_at=now,
            expires_at=now + ttl,
        )


class AnomalyScore(BaseModel):
    """How unusual one reading of one device is, in [0, 1], and why."""

    model_config = EVENT_CONFIG

    device_id: DeviceId
    device_type: str
    ts: AwareDatetime
    seq_first: int
    seq_last: int
    score: Score
    #: per signal: how far it is from the device's own baseline (robust z-score)
    contributions: dict[str, float] = Field(default_factory=dict)
    detector_version: str
    warming_up: bool = False
    #: False while the device is out of its normal (most recent readings beyond the model's
    #: alpha limit): the alert policy holds an anomaly alert open while so.
    in_control: bool = True
    #: The health index: how far the device's recent readings are from its own frozen healthy
    #: reference (:mod:`twin_stream.domain.detection.health`); None while the reference is
    #: still being learned (or in a mode the reference does not cover). Its trend is what a
    #: slow degradation looks like.
    health: Annotated[float, Field(ge=0)] | None = None
    #: 0 normal, 1 degrading (warning), 2 degrading fast or far (critical).
    health_stage: Annotated[int, Field(ge=0, le=2)] = 0


@dataclass(slots=True)
class ScoreRecord:
    """An :class:`AnomalyScore` as the detector makes it on its hot path: the same fields,
    serialised straight to the same JSON (no validation of values our own code computed; the
    schema stays the contract, checked in the tests). Read-only by convention, not frozen: a
    frozen dataclass costs about three times as much to build (~4 us of the detector's ~30 us
    per reading with :class:`SignalContribution`).

    >>> from datetime import timezone
    >>> r = ScoreRecord("pump-0001", "infusion_pump", datetime(2026, 1, 1, tzinfo=timezone.utc),
    ...                 7, 7, 0.12, {"motor_current": 1.5}, "ts-detector/2")
    >>> AnomalyScore.model_validate_json(r.to_json()).score
    0.12
    """

    device_id: str
    device_type: str
    ts: datetime
    seq_first: int
    seq_last: int
    score: float
    contributions: dict[str, float]
    detector_version: str
    warming_up: bool = False
    in_control: bool = True
    health: float | None = None
    health_stage: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_UTC_Z)


class ContributionLike(Protocol):
    """What the alert policy reads of a contribution."""

    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def baseline(self) -> float: ...
    @property
    def deviation(self) -> float: ...


@dataclass(slots=True)
class SignalContribution:
    """One signal behind a score, as the detector makes it per reading (a
    :class:`Contribution` is built from it only when an alert carries it). Read-only by
    convention, like :class:`ScoreRecord`."""

    metric: str
    value: float
    baseline: float
    deviation: float


class Prediction(BaseModel):
    """When one degrading signal of one device is expected to cross its failure limit."""

    model_config = EVENT_CONFIG

    device_id: DeviceId
    device_type: str
    metric: str
    ts: AwareDatetime
    value: float
    limit: float
    trend_per_h: float
    #: None when the trend points away from the limit.
    time_to_failure_h: Annotated[float, Field(ge=0)] | None
    lower_h: Annotated[float, Field(ge=0)] | None = None  # uncertainty band
    upper_h: Annotated[float, Field(ge=0)] | None = None
    detector_version: str


@dataclass(slots=True)
class PredictionRecord:
    """A :class:`Prediction` as the detector makes it (at each trend bucket's close, a few per
    ten readings): the same fields, serialised straight to the same JSON, as
    :class:`ScoreRecord` is. The pydantic model is built from it only when an alert carries
    it (:meth:`to_model`); read-only by convention.

    >>> from datetime import timezone
    >>> r = PredictionRecord("pump-0001", "infusion_pump", "motor_current",
    ...                      datetime(2026, 1, 1, tzinfo=timezone.utc), 0.42, 0.8, 0.02, 19.0,
    ...                      12.0, 30.0, "ts-detector/2")
    >>> Prediction.model_validate_json(r.to_json()) == r.to_model()
    True
    """

    device_id: str
    device_type: str
    metric: str
    ts: datetime
    value: float
    limit: float
    trend_per_h: float
    time_to_failure_h: float | None
    lower_h: float | None
    upper_h: float | None
    detector_version: str

    def to_json(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_UTC_Z)

    def to_model(self) -> Prediction:
        return Prediction.model_validate(asdict(self))


class Contribution(BaseModel):
    """One signal behind an alert, against the device's own baseline."""

    model_config = EVENT_CONFIG

    metric: str
    value: float
    baseline: float
    deviation: float  # in robust standard deviations


class AlertAck(BaseModel):
    """Who acknowledged an alert, when, why, and at which severity: an acknowledged alert does
    not page (nor is it re-notified) unless it escalates past that severity."""

    model_config = EVENT_CONFIG

    by: str
    at: AwareDatetime
    note: str | None = None
    severity: Severity
    action_id: str | None = None  # the alert action that made it (twin.alert_actions)


class AlertShelf(BaseModel):
    """Who shelved an alert, when, why, and until when: a shelved alert is hidden and does not
    page; when ``until`` has passed it returns (``unshelved``)."""

    model_config = EVENT_CONFIG

    by: str
    at: AwareDatetime
    until: AwareDatetime
    note: str | None = None
    action_id: str | None = None


class Alert(BaseModel):
    """One event of an alert's life: its opening, an update, its acknowledgement, shelving,
    return from the shelf or re-notification, or its resolution.

    The events of one alert share its ``alert_id``; ``revision`` counts them (0 for the opening,
    then 1, 2, ... for each later event), so the latest event is the one with the highest
    revision.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> a = Alert(alert_id="a1", device_id="pump-0001", device_type="infusion_pump",
    ...           kind="anomaly", severity="info", state="open", opened_at=t, ts=t,
    ...           summary="anomaly", detector_version="d")
    >>> a.pages, a.model_copy(update={"severity": "warning", "state": "updated"}).pages
    (False, True)
    >>> a.model_copy(update={"severity": "critical", "state": "resolved"}).pages
    False
    """

    model_config = EVENT_CONFIG

    alert_id: str
    device_id: DeviceId
    device_type: str
    kind: AlertKind
    severity: Severity
    state: AlertState
    opened_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    ts: AwareDatetime
    summary: str
    contributions: list[Contribution] = Field(default_factory=list)
    prediction: Prediction | None = None
    seq_first: int | None = None
    seq_last: int | None = None
    detector_version: str
    revision: Annotated[int, Field(ge=0)] = 0
    details: dict[str, Any] = Field(default_factory=dict)
    #: Set while acknowledged (kept on the resolution, for the record).
    ack: AlertAck | None = None
    #: Set while shelved (cleared by ``unshelved``).
    shelf: AlertShelf | None = None
    #: How many times it was re-notified (``renotified`` events).
    renotified: Annotated[int, Field(ge=0)] = 0

    @property
    def pages(self) -> bool:
        """Whether this event notifies a person: warning or critical, not resolved, neither
        acknowledged nor shelved (a re-notification and a return from the shelf page again)."""
        return (
            self.state != "resolved"
            and self.severity in PAGING_SEVERITIES
            and self.ack is None
            and self.shelf is None
        )
