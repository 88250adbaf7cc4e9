"""Settings, read once from the environment at the CLI edge and passed down as plain values.

Every variable has the prefix ``TWIN_``; nested groups use ``__`` (``TWIN_STACK__DIR``).

>>> Settings().stack.dir.name
'stack'
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "StackSettings"]


class StackSettings(BaseModel):
    """Where the local stack keeps its data and finds the Kafka jars."""

    model_config = ConfigDict(frozen=True)

    dir: Path = Path(".twin-stream/stack")
    kafka_libs: Path | None = None  # default: .cache/kafka/libs found from the working dir


class Settings(BaseSettings):
    """All of twin-stream's settings."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", env_nested_delimiter="__", frozen=True)

    stack: StackSettings = StackSettings()
