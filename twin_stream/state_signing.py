"""The process's state signer: the worker's state key (``TWIN_STATE__SIGNING_KEY``), or, where
none is set (the dev stack, tests), a key made for this process, said in a log line.

Every device's model state the worker saves to its ``models`` changelog is signed with it, and
state whose signature fails is refused before anything in it is unpickled
(:mod:`twin_stream.domain.state_envelope`). Compose, the production deployment, will not start
a worker without the key, and a worker run with ``TWIN_DEPLOYMENT=production`` anywhere stops
with one line naming the variable (docs/security.md, "Saved state cannot run code"). A key
made for the process is acceptable outside production only: the state it signs loads in no
other process and not after a restart (each device's models are then learned afresh; its
alerts are kept).
"""

from __future__ import annotations

import logging
import threading

from pydantic import SecretStr

from twin_stream.domain.state_envelope import StateSigner, ephemeral_signer
from twin_stream.errors import ConfigError

__all__ = ["install", "signer"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_signer: StateSigner | None = None


def install(key: SecretStr | None, *, production: bool = False) -> StateSigner:
    """Sign with ``key`` from now on in this process (None: a key made for it, once; in a
    ``production`` deployment, ``TWIN_DEPLOYMENT=production``, a :class:`ConfigError` that
    names the variable instead: the worker does not start)."""
    global _signer
    if key is None and production:
        raise ConfigError(
            "TWIN_STATE__SIGNING_KEY is not set: a production deployment "
            "(TWIN_DEPLOYMENT=production) does not start a worker without it (docs/security.md)"
        )
    with _lock:
        if key is not None:
            _signer = StateSigner(key.get_secret_value().encode())
        elif _signer is None:
            _signer = _made_here()
        return _signer


def signer() -> StateSigner:
    """The signer :func:`install` set, or one with a key made for this process."""
    global _signer
    with _lock:
        if _signer is None:
            _signer = _made_here()
        return _signer


def _made_here() -> StateSigner:
    log.warning(
        "TWIN_STATE__SIGNING_KEY is not set: signing device state with a key made for this "
        "process (dev and tests only: its checkpoints load in no other worker, nor in this one "
        "after a restart; models are then learned afresh, alerts kept)"
    )
    return ephemeral_signer()
