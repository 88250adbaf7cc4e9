"""The Faust worker: ``app`` (wiring), ``agents`` (one per topic), ``publishing`` (what they
produce), ``heartbeat`` (the timer), ``checkpoint`` (the device cache and its checkpoints),
``processing`` (one device's events, without Faust), ``views`` (the twin API)."""

from twin_stream.worker.agents import register_agents
from twin_stream.worker.app import WorkerConfig, create_app
from twin_stream.worker.checkpoint import DeviceCache
from twin_stream.worker.processing import DeviceState, Outputs, twin_view
from twin_stream.worker.publishing import Publisher

__all__ = [
    "DeviceCache",
    "DeviceState",
    "Outputs",
    "Publisher",
    "WorkerConfig",
    "create_app",
    "register_agents",
    "twin_view",
]
