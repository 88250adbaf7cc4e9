"""A device's alert state as a versioned, validated record: JSON that is parsed, never executed.

What the alert policy (:class:`~twin_stream.domain.alerting.AlertPolicy`) must carry across a
restart, a rebalance and a model upgrade is written as a record of plain values: its
conditions (streaks, cooldowns, the time-to-failure countdowns it shows), its open alerts with
their acknowledgements and shelves, the re-notification marks, the quiet period after
maintenance, and the compressed history of resolved alerts. Restoring it validates every field
with pydantic (types, ranges, no unknown field) and rebuilds the policy from the values: a
record made by someone who can write the changelog can at worst say wrong things about alerts,
never run code (the model state, which River can only pickle, is signed instead:
:mod:`twin_stream.domain.state_envelope`).

Versions. ``schema_version`` is the record's layout; :data:`MIGRATIONS` takes a record of each
version to the next, so a record written by an older worker loads after an upgrade (its alerts
kept); a record of a version this code does not know (a newer worker's, after a rollback) is
refused with :class:`~twin_stream.errors.StateVersionMismatch`. ``policy_version`` is the
meaning of the policy's counters (:data:`~twin_stream.domain.alerting.POLICY_VERSION`): a
record of another one is refused as well (its counters would mean something else).

* v1: what the pickled policy held, its thresholds (``params``) included;
* v2 (this code's): without ``params``. The thresholds are the code's, pinned by
  ``policy_version``, and every device had the defaults; saving them with every checkpoint
  only froze a device on the thresholds it was first seen with.

>>> from datetime import datetime, timedelta, timezone
>>> from twin_stream.domain.alerting import AlertPolicy
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> policy = AlertPolicy("pump-0001", "infusion_pump")
>>> _ = policy.on_telemetry(t, 1)
>>> opened = policy.on_connectivity(t + timedelta(minutes=1), online=False)
>>> restored = policy_from_record(decode_record(encode_record(policy)))
>>> [a.alert_id for a in restored.open_alerts()] == [opened[0].alert_id], restored.last_seq
(True, 1)
>>> decode_record(b'{"schema_version": 9}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
twin_stream.errors.StateVersionMismatch: alert state: schema version 9 is newer than this ...
"""

from __future__ import annotations

import base64
import dataclasses
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from twin_stream.domain.alerting import POLICY_VERSION, AlertPolicy, AlertPolicyParams
from twin_stream.domain.alerting.state import _Condition, _Slot
from twin_stream.domain.events import Alert, AlertKind, Contribution, Prediction, Severity
from twin_stream.errors import StateError, StateVersionMismatch

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "MIGRATIONS",
    "AlertStateRecord",
    "decode_record",
    "encode_record",
    "inflate",
    "migrate",
    "policy_from_record",
]

#: The layout this code writes.
ALERT_SCHEMA_VERSION: Final = 2
#: The most a compressed part of a device's state may inflate to. A device's alert state is a
#: few kB and its models some tens (issue 19: ~24 kB per device); 8 MiB leaves room for
#: the largest detector configuration here and stops a zlib bomb from filling the worker.
MAX_INFLATED_BYTES: Final = 8 << 20

Count = Annotated[int, Field(ge=0)]
_HISTORY: Final[TypeAdapter[list[Alert]]] = TypeAdapter(list[Alert])


class _Record(BaseModel):
    # Unknown fields are refused: a record this code does not fully understand is not guessed at.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionRecord(_Record):
    """One condition the policy watches (:class:`~twin_stream.domain.alerting.state._Condition`)."""

    kind: AlertKind
    slot: str
    active: bool
    order: Count
    streak: Count
    calm: Count
    above: Count
    cooldown: Count
    seq_first: int | None
    peak: Severity
    severity: Severity
    note: str
    quiet: bool
    latched: bool
    text: str
    signature: str
    contributions: list[Contribution]
    prediction: Prediction | None
    shown_ttf: float | None
    details: dict[str, Any]


class SlotRecord(_Record):
    """One alert of the policy: its latest event (acknowledgement and shelf included)."""

    alert: Alert | None
    kinds: list[str]
    signature: tuple[str, ...]


class AlertStateRecord(_Record):
    """A device's alert state, layout v2 (:data:`ALERT_SCHEMA_VERSION`)."""

    schema_version: Literal[2]
    policy_version: str
    device_id: str
    device_type: str
    conditions: dict[str, ConditionRecord]
    slots: dict[str, SlotRecord]
    quiet: Count
    info_wait: Count
    last_seq: int | None
    activations: Count
    first_ts: datetime | None
    last_ts: datetime | None
    #: The resolved alerts kept (:func:`~twin_stream.domain.alert_lifecycle.remember`: their
    #: JSON, compressed), base64; checked to be a list of alerts when the record is read.
    resolved: bytes
    #: Per open alert, the last paging event the re-notification clock saw (revision, time).
    paged: dict[str, tuple[Count, datetime]]

    @field_validator("resolved", mode="before")
    @classmethod
    def _history(cls, value: object) -> bytes:
        if not isinstance(value, str):
            raise ValueError("the history of resolved alerts is base64 text")
        data = base64.b64decode(value, validate=True)
        if data:
            try:
                _HISTORY.validate_json(inflate(data))
            except (StateError, ValidationError) as e:
                raise ValueError(f"the history of resolved alerts does not read: {e}") from e
        return data


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """``zlib.decompress``, refusing (StateError) what would inflate past ``limit`` bytes.

    >>> len(inflate(zlib.compress(b"0" * 1000)))
    1000
    >>> inflate(zlib.compress(b"0" * 1000), limit=100)
    Traceback (most recent call last):
    ...
    twin_stream.errors.StateError: compressed state inflates past 100 bytes
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as e:
        raise StateError(f"compressed state does not inflate: {e}") from e
    if inflater.unconsumed_tail:
        raise StateError(f"compressed state inflates past {limit} bytes")
    if not inflater.eof:
        raise StateError("compressed state is cut short")
    return out


# -- migrations: each takes a record of version n (as parsed JSON) to version n + 1 -----------


def _v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    """v2 leaves the thresholds to the code (``policy_version`` pins their meaning)."""
    record = dict(record)
    record.pop("params", None)
    return record


#: Version n -> the function that makes a record of it a record of version n + 1.
MIGRATIONS: Final[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _v1_to_v2}


def migrate(record: dict[str, Any]) -> dict[str, Any]:
    """A parsed record of any known version, brought to :data:`ALERT_SCHEMA_VERSION`.

    >>> migrate({"schema_version": 1, "params": {}, "device_id": "p"})
    {'schema_version': 2, 'device_id': 'p'}
    """
    version = record.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"alert state: no schema version (got {version!r})")
    if version > ALERT_SCHEMA_VERSION:
        raise StateVersionMismatch(
            f"alert state: schema version {version} is newer than this code's "
            f"{ALERT_SCHEMA_VERSION} (written by a newer worker): not read"
        )
    while version < ALERT_SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version += 1
        record["schema_version"] = version
    return record


# -- writing and reading -----------------------------------------------------------------------


def _plain(value: object) -> object:
    """orjson's fallback: the pydantic models an alert state holds, as their JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not alert state")


def encode_record(policy: AlertPolicy) -> bytes:
    """The policy's state as a v2 record's JSON (no pydantic on the way out: this runs at every
    checkpoint; :func:`decode_record` validates on the way in)."""
    # orjson writes the conditions' and slots' dataclasses (and the detector's contribution and
    # prediction records they may hold) field by field: the record's fields are theirs.
    return orjson.dumps(
        {
            "schema_version": ALERT_SCHEMA_VERSION,
            "policy_version": policy.version,
            "device_id": policy.device_id,
            "device_type": policy.device_type,
            "conditions": policy.conditions,
            "slots": policy.slots,
            "quiet": policy.quiet,
            "info_wait": policy.info_wait,
            "last_seq": policy.last_seq,
            "activations": policy.activations,
            "first_ts": policy.first_ts,
            "last_ts": policy.last_ts,
            "resolved": base64.b64encode(policy.resolved).decode(),
            "paged": policy.paged,
        },
        default=_plain,
    )


def decode_record(data: bytes) -> AlertStateRecord:
    """A record's JSON, migrated to this version and validated.

    Raises :class:`~twin_stream.errors.StateVersionMismatch` for a record of a newer layout or
    of another policy version, :class:`~twin_stream.errors.StateError` for one that does not
    validate (the first problem named)."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise StateError(f"alert state: not JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise StateError("alert state: not a JSON object")
    try:
        record = AlertStateRecord.model_validate(migrate(parsed))
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise StateError(f"alert state: {where}: {first['msg']}") from e
    if record.policy_version != POLICY_VERSION:
        raise StateVersionMismatch(
            f"alert state: policy {record.policy_version}, this is {POLICY_VERSION}"
        )
    return record


_CONDITION_FIELDS: Final = tuple(f.name for f in dataclasses.fields(_Condition))


def policy_from_record(record: AlertStateRecord) -> AlertPolicy:
    """The policy a record describes, with this code's thresholds."""
    policy = AlertPolicy(record.device_id, record.device_type, params=AlertPolicyParams())
    policy.conditions = {
        key: _Condition(**{name: getattr(c, name) for name in _CONDITION_FIELDS})
        for key, c in record.conditions.items()
    }
    policy.slots = {
        key: _Slot(alert=s.alert, kinds=list(s.kinds), signature=s.signature)
        for key, s in record.slots.items()
    }
    policy.quiet, policy.info_wait = record.quiet, record.info_wait
    policy.last_seq, policy.activations = record.last_seq, record.activations
    policy.first_ts, policy.last_ts = record.first_ts, record.last_ts
    policy.resolved = record.resolved
    policy.paged = dict(record.paged)
    return policy
