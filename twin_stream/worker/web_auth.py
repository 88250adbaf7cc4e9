"""The twin API's guard: one aiohttp middleware on the Faust web app that authenticates every
request by its bearer token and authorises it by method and path
(:func:`twin_stream.auth.required_role`): the twin API's routes by role, every other route
(Faust's own views among them) for ``admin`` only.

A request without a valid token is answered 401 (``WWW-Authenticate: Bearer``), one whose role
is too low 403, both with a JSON body ``{"error": ..., "required_role": ...}``. An authorised
request carries its caller as ``request[PRINCIPAL]`` (aiohttp's typed request key named
``"principal"``; :func:`principal_of`), a :class:`~twin_stream.auth.Principal`, for the views that
record who changed what. A request one worker forwards to another carries the
caller's own ``Authorization`` header (:func:`forwarded_headers`), so it passes there too.

The tokens come from ``TWIN_API__TOKENS`` (fixed for the worker's life) or the tokens file,
re-read when it changes, so that a token revoked with ``twin-stream tokens revoke`` is refused
from the next request on. A token verified once (scrypt, about 35 ms, off the event loop) is
remembered by its SHA-256 until the tokens change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

import faust
from aiohttp import web

from twin_stream.auth import Principal, Role, TokenFile, TokenStore, required_role
from twin_stream.errors import TwinStreamError
from twin_stream.worker.health import PUBLIC_PATHS

__all__ = [
    "PRINCIPAL",
    "Authenticator",
    "bearer_token",
    "forwarded_headers",
    "install_auth",
    "principal_of",
]

log = logging.getLogger(__name__)

#: The request key the caller's :class:`Principal` is stored under.
PRINCIPAL: Final = web.RequestKey("principal", Principal)
_CACHE_MAX: Final = 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive).

    >>> bearer_token("Bearer tsk_x"), bearer_token("bearer  tsk_x "), bearer_token("Basic eA==")
    ('tsk_x', 'tsk_x', None)
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def forwarded_headers(request: Any) -> dict[str, str]:
    """The headers a request forwarded to another worker keeps: the caller's credentials."""
    authorization = request.headers.get("Authorization")
    return {"Authorization": authorization} if authorization else {}


def principal_of(request: Any) -> Principal:
    """The caller of a request the middleware let through."""
    principal: Principal = request[PRINCIPAL]
    return principal


class Authenticator:
    """Verifies bearer tokens against the tokens of ``TWIN_API__TOKENS`` or of the tokens file."""

    def __init__(self, *, tokens_json: str | None = None, tokens_file: Path | None = None) -> None:
        self._file = TokenFile(tokens_file) if not tokens_json and tokens_file else None
        self._store = (
            TokenStore.from_json(tokens_json, "TWIN_API__TOKENS") if tokens_json else TokenStore()
        )
        self._signature: tuple[int, int, int] | None = None
        self._verified: dict[bytes, Principal] = {}
        self.reload()

    @property
    def source(self) -> str:
        return str(self._file.path) if self._file else "TWIN_API__TOKENS"

    @property
    def store(self) -> TokenStore:
        return self._store

    def reload(self) -> None:
        """Read the tokens file again if it changed since it was last read."""
        if self._file is None:
            return
        signature = self._file.signature()
        if signature != self._signature:
            self._store = self._file.load()
            self._signature = signature
            self._verified.clear()

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid token, None for any other."""
        self.reload()
        key = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(key)
        if known is not None:
            return known
        store = self._store
        if store.find(token) is None:
            return None  # no such key id: nothing to hash
        principal = await asyncio.get_running_loop().run_in_executor(
            None, store.authenticate, token
        )
        if principal is not None and store is self._store:  # not reloaded meanwhile
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
            self._verified[key] = principal
        return principal


def _refusal(
    status: int, error: str, required: Role, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": error, "required_role": required}, status=status, headers=headers
    )


def auth_middleware(authenticator: Authenticator) -> Callable[..., Awaitable[Any]]:
    """The middleware: 401 without a valid token, 403 for a role too low, else the handler."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path in PUBLIC_PATHS:
            return await handler(request)  # readiness and liveness: no data, probes have no token
        required = required_role(request.method, request.path)
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return _refusal(
                401,
                "authentication required: send 'Authorization: Bearer <token>'",
                required,
                {"WWW-Authenticate": 'Bearer realm="twin-stream"'},
            )
        try:
            principal = await authenticator.authenticate(token)
        except TwinStreamError as e:  # the tokens file became unreadable
            log.error("cannot check a token: %s", e)
            return web.json_response({"error": f"cannot check tokens: {e}"}, status=503)
        if principal is None:
            return _refusal(
                401,
                "unknown or revoked token",
                required,
                {"WWW-Authenticate": 'Bearer realm="twin-stream", error="invalid_token"'},
            )
        if not principal.may(required):
            return _refusal(
                403,
                f"{principal.name!r} has the role {principal.role!r}; "
                f"{request.method} {request.path} needs {required!r}",
                required,
            )
        request[PRINCIPAL] = principal
        return await handler(request)

    return guard


def install_auth(app: faust.App, authenticator: Authenticator) -> None:
    """Guard every route of the worker's web server (before it starts)."""
    app.web.web_app.middlewares.append(auth_middleware(authenticator))  # type: ignore[attr-defined]
