"""The process's redactor: the platform's redaction key (``TWIN_PRIVACY__REDACTION_KEY``), or,
where none is set (the dev stack, tests), a key made for this process, said in a log line.

Every dead letter is redacted with it (:func:`twin_stream.bridge.routing.dead_letter`), and so
is what the platform logs about a payload it refused (:mod:`twin_stream.domain.privacy`).
Compose, the production deployment, will not start a service without the key, and a service
run with ``TWIN_DEPLOYMENT=production`` anywhere stops with one line naming the variable
(docs/security.md, "Identifiers are never kept").
"""

from __future__ import annotations

import logging
import secrets
import threading

from pydantic import SecretStr

from twin_stream.domain.privacy import Redactor
from twin_stream.errors import ConfigError

__all__ = ["install", "redactor"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_redactor: Redactor | None = None


def install(key: SecretStr | None, *, production: bool = False) -> Redactor:
    """Redact with ``key`` from now on in this process (None: a key made for it, once; in a
    ``production`` deployment, ``TWIN_DEPLOYMENT=production``, a :class:`ConfigError` that
    names the variable instead: the service does not start)."""
    global _redactor
    if key is None and production:
        raise ConfigError(
            "TWIN_PRIVACY__REDACTION_KEY is not set: a production deployment "
            "(TWIN_DEPLOYMENT=production) does not start without it (docs/security.md)"
        )
    with _lock:
        if key is not None:
            _redactor = Redactor(key.get_secret_value().encode())
        elif _redactor is None:
            _redactor = _made_here()
        return _redactor


def redactor() -> Redactor:
    """The redactor :func:`install` set, or one with a key made for this process."""
    global _redactor
    with _lock:
        if _redactor is None:
            _redactor = _made_here()
        return _redactor


def _made_here() -> Redactor:
    log.warning(
        "TWIN_PRIVACY__REDACTION_KEY is not set: redacting with a key made for this process "
        "(dev and tests only: its tokens match no other process's, nor this one's after a restart)"
    )
    return Redactor(secrets.token_bytes(32))
