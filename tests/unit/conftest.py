"""Fixtures several unit-test modules share (defined in their own modules, registered here)."""

from tests.unit.worker_agents import app, sent

__all__ = ["app", "sent"]
