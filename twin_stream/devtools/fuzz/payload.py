"""A message as bytes and as fields: JSON written with raw ``NaN``/``Infinity`` tokens, every
field's path, a copy with one field changed or left out, a payload padded to a size."""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["NONFINITE", "dumps", "get", "leaves", "numbers", "padded", "replace", "without"]

NONFINITE: Final = "\x00nonfinite\x00"  # stands for a raw NaN/Infinity token until serialised


def dumps(message: Any) -> bytes:
    """JSON (integers of any size), with each ``NONFINITE`` stand-in written as the raw token
    it stands for."""
    raw = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"):
        raw = raw.replace(json.dumps(NONFINITE + token.decode()).encode(), token)
    return raw


def leaves(message: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field's path (objects too: ``("metrics",)`` and ``("metrics", "motor_current")``),
    ``v`` last (hypothesis draws early elements more often, and ``v`` is in every message)."""
    paths = []
    for key, value in message.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths.extend(leaves(value, (*prefix, key)))
    return sorted(paths, key=lambda p: p == ("v",))


def numbers(message: dict[str, Any]) -> list[tuple[str, ...]]:
    """The numeric fields' paths; ``v`` only where there is no other (an ack)."""
    found = [p for p in leaves(message) if type(get(message, p)) in (int, float)]
    return [p for p in found if p != ("v",)] or [("v",)]


def get(message: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path``."""
    for key in path:
        message = message[key]
    return message


def replace(message: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``message`` with the field at ``path`` set to ``value``."""
    head, *rest = path
    return {**message, head: replace(message[head], tuple(rest), value) if rest else value}


def without(message: dict[str, Any], key: str) -> dict[str, Any]:
    """A copy of ``message`` without its top-level field ``key``."""
    return {k: v for k, v in message.items() if k != key}


def padded(valid: bytes, size: int, *, spaces: bool = False) -> bytes:
    """``valid`` (a JSON object) grown to ``size`` bytes: trailing spaces, or an extra field."""
    room = max(0, size - len(valid))
    if spaces:
        return valid + b" " * room
    pad = b"x" * max(0, room - len(b',"pad":""'))
    return valid[:-1] + b',"pad":"' + pad + b'"}'
