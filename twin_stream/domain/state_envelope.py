"""The bytes a device's monitor is saved as: a small envelope around its alert record and its
signed model state (issue 23, item 5).

River models can only be pickled, and unpickling runs code: whoever can write the worker's
``models`` changelog could run code in the worker if it were loaded as it comes. So the model
state is signed, HMAC-SHA256 with the worker's state key (``TWIN_STATE__SIGNING_KEY``), and its
signature is checked *before* anything is unpickled; the alert state beside it is a JSON record
that is validated, never executed (:mod:`twin_stream.domain.state_records`), so it needs no
signature to be safe and is kept even when the models are refused.

Layout (all lengths big-endian)::

    b"TSS\\x01"          magic and format 1 (4 bytes)
    header length        4 bytes
    header               JSON: device_id, device_type, fw, alerts and models (their lengths),
                         sig (the models' HMAC-SHA256, hex)
    alerts               zlib-compressed alert record JSON (state_records)
    models               the detector's own bytes (DeviceDetector.dumps: its detector and River
                         version, then its compressed pickle)

The signature covers a domain tag, the device id and the model bytes: models signed for one
device do not load as another's. Anything else of the envelope is checked by validation.

>>> signer = StateSigner(b"0123456789abcdef")
>>> data = pack("pump-0001", "infusion_pump", "1.0.0", b'{"a": 1}', b"models", signer)
>>> saved = unpack(data)
>>> saved.header.device_id, alert_json(saved), verified_models(saved, signer)
('pump-0001', b'{"a": 1}', b'models')
>>> verified_models(saved, StateSigner(b"another key, 16+"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
twin_stream.errors.StateSignatureInvalid: monitor state: the model state of pump-0001 ...
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import zlib
from dataclasses import dataclass
from typing import Annotated, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twin_stream.domain.state_records import inflate
from twin_stream.errors import StateError, StateSignatureInvalid, StateVersionMismatch

__all__ = [
    "MAGIC",
    "MIN_KEY_BYTES",
    "EnvelopeHeader",
    "SavedState",
    "StateSigner",
    "alert_json",
    "ephemeral_signer",
    "pack",
    "unpack",
    "verified_models",
]

MAGIC: Final = b"TSS\x01"
#: As the redaction key's: 16 bytes at least (128 bits, NIST SP 800-107's floor for HMAC keys).
MIN_KEY_BYTES: Final = 16
#: What is signed before the device id and the models: a signature made for anything else
#: with the same key is not one of these.
_TAG: Final = b"twin-stream/models/1\x00"
#: The header is a few hundred bytes; more is not a header of ours.
_MAX_HEADER: Final = 4096


class StateSigner:
    """Signs and checks model state with one key (HMAC-SHA256)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a state signing key has {MIN_KEY_BYTES} bytes at least")
        self._key = key

    def __repr__(self) -> str:
        return "StateSigner(<key>)"  # never the key

    def sign(self, device_id: str, models: bytes) -> str:
        mac = hmac.new(self._key, _TAG, hashlib.sha256)
        mac.update(device_id.encode())
        mac.update(b"\x00")
        mac.update(models)
        return mac.hexdigest()

    def verify(self, device_id: str, models: bytes, signature: str) -> None:
        """Raise :class:`~twin_stream.errors.StateSignatureInvalid` unless ``signature`` is
        this key's for these models of this device."""
        if not hmac.compare_digest(self.sign(device_id, models), signature):
            raise StateSignatureInvalid(
                f"monitor state: the model state of {device_id} is not signed with this "
                "worker's state key (TWIN_STATE__SIGNING_KEY): not loaded"
            )


_lock = threading.Lock()
_ephemeral: StateSigner | None = None


def ephemeral_signer() -> StateSigner:
    """A signer with a key made for this process: what :meth:`DeviceMonitor.dumps
    <twin_stream.domain.monitor.DeviceMonitor.dumps>` signs with when given none (evaluations,
    benches, tests). State signed with it loads in this process only; the worker signs with
    the process's key (:mod:`twin_stream.state_signing`)."""
    global _ephemeral
    with _lock:
        if _ephemeral is None:
            _ephemeral = StateSigner(secrets.token_bytes(32))
        return _ephemeral


class EnvelopeHeader(BaseModel):
    """The envelope's header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    device_id: Annotated[str, Field(min_length=1, max_length=256)]
    device_type: Annotated[str, Field(min_length=1, max_length=256)]
    fw: Annotated[str, Field(max_length=256)] | None
    alerts: Annotated[int, Field(ge=0)]
    models: Annotated[int, Field(ge=0)]
    sig: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


@dataclass(frozen=True, slots=True)
class SavedState:
    """An envelope taken apart; nothing in it verified yet but its header's shape."""

    header: EnvelopeHeader
    raw_header: bytes
    alerts: bytes
    models: bytes


def pack(
    device_id: str,
    device_type: str,
    fw: str | None,
    alerts: bytes,
    models: bytes,
    signer: StateSigner,
) -> bytes:
    """The envelope of one monitor: its alert record's JSON and its detector's bytes."""
    compressed = zlib.compress(alerts, 6)
    header = orjson.dumps(
        {
            "format": 1,
            "device_id": device_id,
            "device_type": device_type,
            "fw": fw,
            "alerts": len(compressed),
            "models": len(models),
            "sig": signer.sign(device_id, models),
        }
    )
    return b"".join((MAGIC, len(header).to_bytes(4, "big"), header, compressed, models))


def unpack(data: bytes) -> SavedState:
    """Take an envelope apart (no signature checked, nothing inflated or unpickled).

    Raises :class:`~twin_stream.errors.StateVersionMismatch` for bytes of another format (the
    plain pickle of before issue 23, never loaded: it would run whatever it holds),
    :class:`~twin_stream.errors.StateError` for an envelope that is cut short or malformed."""
    if not data.startswith(MAGIC):
        if data.startswith(b"TSS"):
            raise StateVersionMismatch(f"monitor state: envelope format {data[3]}, this is 1")
        raise StateVersionMismatch(
            "monitor state: not a signed envelope (a pickle from before issue 23 is not loaded)"
        )
    size = int.from_bytes(data[4:8], "big")
    if size > _MAX_HEADER or len(data) < 8 + size:
        raise StateError(f"monitor state: a header of {size} bytes in {len(data)}")
    raw = data[8 : 8 + size]
    try:
        header = EnvelopeHeader.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(header)"
        raise StateError(f"monitor state: header: {where}: {first['msg']}") from e
    start = 8 + size
    end = start + header.alerts
    if len(data) != end + header.models:
        raise StateError(f"monitor state: {len(data)} bytes, the header says {end + header.models}")
    return SavedState(header, raw, data[start:end], data[end:])


def alert_json(saved: SavedState) -> bytes:
    """The alert record's JSON (inflated, bounded; not yet validated)."""
    return inflate(saved.alerts)


def verified_models(saved: SavedState, signer: StateSigner) -> bytes:
    """The model bytes, once their signature is checked (StateSignatureInvalid if not)."""
    signer.verify(saved.header.device_id, saved.models, saved.header.sig)
    return saved.models
