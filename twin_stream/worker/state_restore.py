"""A device's monitor restored from its checkpoint in the ``models`` table, as far as it can be
trusted (:meth:`DeviceMonitor.restore <twin_stream.domain.monitor.DeviceMonitor.restore>`,
signed with the process's state key: :mod:`twin_stream.state_signing`), and what was refused of
it, said in a log line and, unless it was an upgrade, kept for the dead-letter topic
(:class:`StateRefusal`; the agents send it: ``DeviceAgents.dead_letter_refusals``).

* another detector, River or policy version (an upgrade): a warning; the part of another
  version starts afresh (models re-learned, every alert, acknowledgement and shelf kept);
* a model state whose signature fails, an alert record that does not validate, an envelope
  that does not read: an error and a refusal; what was refused starts afresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from twin_stream.domain.monitor import DeviceMonitor
from twin_stream.domain.state_envelope import MAGIC
from twin_stream.errors import StateError, StateSignatureInvalid, StateVersionMismatch
from twin_stream.state_signing import signer

__all__ = ["StateRefusal", "restore_monitor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StateRefusal:
    """Saved state the worker refused: its envelope's header (JSON, never the pickle: the
    letter must not carry code) and the reason, for the dead-letter topic."""

    header: bytes
    reason: str


def restore_monitor(
    device_id: str, data: bytes, refusals: list[StateRefusal]
) -> DeviceMonitor | None:
    """The device's monitor from ``data`` (None: nothing of it could be kept); what was
    refused is logged, and appended to ``refusals`` unless it was an upgrade."""
    try:
        restored = DeviceMonitor.restore(data, signer())
    except StateError as e:  # not an envelope of ours: nothing of it is kept
        _refused(device_id, data, e, "learning afresh", refusals)
        return None
    monitor = restored.monitor
    if monitor.device_id != device_id:
        error = StateError(f"monitor state: of {monitor.device_id}, saved as {device_id}")
        _refused(device_id, data, error, "learning afresh", refusals)
        return None
    if restored.alerts_refused is not None:
        _refused(device_id, data, restored.alerts_refused, "alert state started afresh", refusals)
    if restored.models_refused is not None:
        kept = "models learned afresh, " + (
            "alert state kept" if restored.alerts_refused is None else "alert state too"
        )
        _refused(device_id, data, restored.models_refused, kept, refusals)
    return monitor


def _refused(
    device_id: str, data: bytes, error: StateError, kept: str, refusals: list[StateRefusal]
) -> None:
    if isinstance(error, StateVersionMismatch):  # an upgrade: expected, nobody's fault
        log.warning("state of %s not all restored (%s): %s", device_id, kept, error)
        return
    log.error("state of %s refused (%s): %s", device_id, kept, error)
    refusals.append(StateRefusal(_envelope_header(data), _reason(error)))


def _envelope_header(data: bytes) -> bytes:
    """The envelope's header JSON, or the first bytes of what is not an envelope."""
    if data.startswith(MAGIC):
        size = int.from_bytes(data[4:8], "big")
        return data[8 : 8 + min(size, 4096)]
    return data[:64]


def _reason(error: StateError) -> str:
    """The dead letter's reason: ``(where): what [rule]``.

    >>> _reason(StateSignatureInvalid("monitor state: not signed with this key"))
    '(monitor_state): not signed with this key [state_signature_invalid]'
    """
    rule = "state_signature_invalid" if isinstance(error, StateSignatureInvalid) else "bad_state"
    where, _, what = str(error).partition(": ")
    return f"({where.replace(' ', '_')}): {' '.join(what.split())} [{rule}]"
