"""Records that carry a batch of one device's outputs: the worker sends one ``twin.scores``
record per device per micro-batch instead of one per reading.

A scores record is a JSON array of score objects (each an :class:`AnomalyScore`, with its own
``seq_first``/``seq_last`` and ``detector_version``, so every score stays traceable to its
reading). A reader also accepts a single score object, as records were written before.

>>> from datetime import datetime, timezone
>>> from twin_stream.domain.events import ScoreRecord
>>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> batch = [ScoreRecord("pump-0001", "infusion_pump", at, s, s, 0.1, {}, "ts-detector/2")
...          for s in (7, 8)]
>>> [s["seq_last"] for s in decode_scores(encode_scores(batch))]
[7, 8]
>>> decode_scores(batch[0].to_json())[0]["seq_last"]
7
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from twin_stream.domain.events import ScoreRecord

__all__ = ["decode_scores", "encode_scores"]


def encode_scores(records: Sequence[ScoreRecord]) -> bytes:
    """One record's value for a batch of one device's scores, in reading order (orjson
    serialises the dataclasses itself, ten times faster than ``asdict`` first)."""
    return orjson.dumps(list(records), option=orjson.OPT_UTC_Z)


def decode_scores(value: bytes) -> list[dict[str, Any]]:
    """The score objects of a scores record (a batch, or one score)."""
    body = orjson.loads(value)
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return [body]
    raise ValueError(f"a scores record is an array or an object, not {type(body).__name__}")
