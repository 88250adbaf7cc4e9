"""Who may use the twin API: bearer tokens, their roles, and which role each route needs.

Pure but for :class:`TokenFile`, the one adapter that reads and writes the tokens file.

A token is ``tsk_<key id>_<secret>``: the key id (public, 8 hex digits) finds the token's record,
the secret (``secrets.token_urlsafe(32)``, 256 random bits) is what proves it. A record holds
only a salted scrypt hash of the whole token (its own 16-byte salt; n=2**14, r=8, p=1), compared
with :func:`hmac.compare_digest`; the token itself is printed once, when it is made, and stored
nowhere.

>>> from datetime import UTC
>>> now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
>>> store, token = TokenStore().add("alice", "operator", now=now)
>>> store.authenticate(token)
Principal(name='alice', role='operator')
>>> store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
True
>>> token in store.to_json()
False
>>> store.revoke("alice").authenticate(token) is None
True

Roles grow: ``viewer`` reads the twin API, ``operator`` also changes devices (desired state,
acknowledging and shelving alerts), ``admin`` may do everything, Faust's own views included.

>>> required_role("GET", "/twins/pump-0001"), required_role("PUT", "/twins/pump-0001/desired")
('viewer', 'operator')
>>> required_role("POST", "/alerts/a-1/ack"), required_role("GET", "/router")
('operator', 'admin')
>>> Principal("bob", "viewer").may("operator")
False
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

from twin_stream.errors import ConfigError, CredentialsError

__all__ = [
    "ROLES",
    "STORE_FORMAT",
    "Principal",
    "Role",
    "TokenFile",
    "TokenRecord",
    "TokenStore",
    "hash_token",
    "new_token",
    "required_role",
    "verify_token",
]

Role = Literal["viewer", "operator", "admin"]
#: The roles, from the least to the most powerful: each may do what the ones before it may.
ROLES: Final[tuple[Role, ...]] = get_args(Role)
#: The tokens file's (and ``TWIN_API__TOKENS``'s) format name.
STORE_FORMAT: Final = "twin-stream-api-tokens/1"

TOKEN_PREFIX: Final = "tsk"
#: A token's name: who or what holds it (a person, a service), shown in the audit trail.
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NAME_RE: Final = re.compile(NAME_PATTERN)
_TOKEN_RE: Final = re.compile(rf"^{TOKEN_PREFIX}_([0-9a-f]{{8}})_([A-Za-z0-9_-]{{20,128}})$")
# scrypt's cost: 16 MiB and about 35 ms per hash here (the API caches what it verified).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a token's name and role (``request["principal"]`` in the views)."""

    name: str
    role: Role

    def may(self, required: Role) -> bool:
        """Whether this role is ``required`` or a more powerful one."""
        return ROLES.index(self.role) >= ROLES.index(required)


def new_token() -> tuple[str, str]:
    """A fresh ``(key id, token)``."""
    key_id = secrets.token_hex(4)
    return key_id, f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_token(token: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$<salt>$<digest>`` (base64) of a token, with a fresh salt unless given."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(
        token.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_token(token: str, hashed: str) -> bool:
    """Whether ``token`` is the one ``hashed`` was made from (constant-time comparison)."""
    try:
        kdf, n, r, p, salt, digest = hashed.split("$")
        if kdf != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(
            token.encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class TokenRecord:
    """One token as it is stored: its name, role, key id, salted hash and creation time."""

    name: str
    role: Role
    key_id: str
    hash: str
    created: datetime

    def __repr__(self) -> str:  # never a hash in a log
        return f"TokenRecord(name={self.name!r}, role={self.role!r}, key_id={self.key_id!r})"

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "role": self.role,
            "key_id": self.key_id,
            "hash": self.hash,
            "created": self.created.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Any) -> TokenRecord:
        if not isinstance(data, dict):
            raise ValueError("a token record is an object")
        role = data["role"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        created = datetime.fromisoformat(data["created"])
        if created.tzinfo is None:
            raise ValueError("created has no time zone")
        return cls(str(data["name"]), role, str(data["key_id"]), str(data["hash"]), created)


@dataclass(frozen=True)
class TokenStore:
    """Every token, by name; immutable (``add`` and ``revoke`` return a new store)."""

    records: tuple[TokenRecord, ...] = ()

    def get(self, name: str) -> TokenRecord | None:
        return next((r for r in self.records if r.name == name), None)

    def add(self, name: str, role: str, *, now: datetime) -> tuple[TokenStore, str]:
        """This store with a new token named ``name``, and the token (shown once, then gone)."""
        if not _NAME_RE.match(name):
            raise CredentialsError(f"token name {name!r} does not match {NAME_PATTERN}")
        if role not in ROLES:
            raise CredentialsError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if self.get(name) is not None:
            raise CredentialsError(f"a token named {name!r} exists; revoke it first")
        key_id, token = new_token()
        while any(r.key_id == key_id for r in self.records):  # 1 in 4 billion
            key_id, token = new_token()
        record = TokenRecord(name, role, key_id, hash_token(token), now)
        return replace(self, records=(*self.records, record)), token

    def revoke(self, name: str) -> TokenStore:
        """This store without the token named ``name``."""
        if self.get(name) is None:
            raise CredentialsError(f"no token named {name!r}")
        return replace(self, records=tuple(r for r in self.records if r.name != name))

    def find(self, token: str) -> TokenRecord | None:
        """The record ``token`` claims to be (by its key id), without checking its secret."""
        match = _TOKEN_RE.match(token)
        if match is None:
            return None
        return next((r for r in self.records if r.key_id == match.group(1)), None)

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid token; None for a malformed, unknown or revoked one."""
        record = self.find(token)
        if record is None or not verify_token(token, record.hash):
            return None
        return Principal(record.name, record.role)

    def to_json(self) -> str:
        body = {"format": STORE_FORMAT, "tokens": [r.to_json() for r in self.records]}
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> TokenStore:
        """Read a store; :class:`ConfigError` naming ``source`` if it is not one."""
        try:
            body = json.loads(text)
            if not isinstance(body, dict) or body.get("format") != STORE_FORMAT:
                raise ValueError(f"not a {STORE_FORMAT} document")
            records = tuple(TokenRecord.from_json(r) for r in body["tokens"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{source}: not a tokens file ({e})") from e
        names = [r.name for r in records]
        if len(set(names)) != len(names):
            raise ConfigError(f"{source}: a token name appears twice")
        return cls(records)


# --- which role each route needs -----------------------------------------------------------

_READ: Final = ("GET", "HEAD")
#: (methods, path pattern, role), first match wins; any other request needs ``admin``.
ROUTE_ROLES: Final[tuple[tuple[tuple[str, ...], re.Pattern[str], Role], ...]] = (
    (("PUT",), re.compile(r"^/twins/[^/]+/desired/?$"), "operator"),
    (("POST",), re.compile(r"^/alerts/[^/]+/(ack|shelve)/?$"), "operator"),
    (("POST",), re.compile(r"^/twins/[^/]+/(failures|rebaseline)/?$"), "operator"),
    (_READ, re.compile(r"^/(twins|alerts)(/[^/]+)*/?$"), "viewer"),
    (_READ, re.compile(r"^/audit/?$"), "viewer"),
)


def required_role(method: str, path: str) -> Role:
    """The least role a request needs: the twin API's routes by method and path; every other
    request (Faust's own views, an unknown path or method) needs ``admin``."""
    for methods, pattern, role in ROUTE_ROLES:
        if method.upper() in methods and pattern.match(path):
            return role
    return "admin"


# --- the adapter: the tokens file ----------------------------------------------------------


class TokenFile:
    """The tokens file (JSON, hashes only, readable by its owner only): read it, and change it
    under an exclusive lock, replacing it in one rename."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> TokenStore:
        """The store in the file; an empty one if there is no file."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return TokenStore()
        except OSError as e:
            raise ConfigError(f"cannot read the tokens file {self.path}: {e}") from e
        return TokenStore.from_json(text, str(self.path))

    def signature(self) -> tuple[int, int, int] | None:
        """What changes when the file does (inode, size, mtime); None if there is none."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def change(self, edit: Callable[[TokenStore], TokenStore]) -> TokenStore:
        """Apply ``edit`` to the stored tokens and write the result; returns it."""
        try:
            with self._locked():
                store = edit(self.load())
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(store.to_json())
                os.replace(tmp, self.path)
        except OSError as e:
            raise ConfigError(f"cannot write the tokens file {self.path}: {e}") from e
        return store
