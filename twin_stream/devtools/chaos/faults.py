"""The faults a chaos run injects, one at a time, in this order, with what each one means.

Each fault breaks one part of the running platform and mends it again: a process is SIGKILLed
(no goodbye, no last commit, no flush) and started again after a short pause; a service is
stopped for an outage and started again on the same port with the same data. ``inject`` calls
``mark_end`` the moment the fault ends (the restart is issued): recovery is counted from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from twin_stream.devtools.chaos.platform import Platform

__all__ = ["DEFAULT_FAULTS", "FAULTS", "Fault", "FaultTiming", "fault_names"]


@dataclass(frozen=True)
class FaultTiming:
    """How long a fault lasts: the pause between a kill and the restart, and an outage."""

    kill_pause_s: float = 2.0
    outage_s: float = 30.0


@dataclass(frozen=True)
class Fault:
    name: str
    #: One line: what the fault does to the platform.
    does: str
    #: ``inject(platform, timing, mark_end)``: break, mend, call ``mark_end`` at the mend.
    inject: Callable[[Platform, FaultTiming, Callable[[], None]], None]
    #: The process to wait on (``GET /ready``) after the fault, if any.
    restarts_worker: str | None = None
    #: Kafka brokers the platform needs for this fault (a run with any such fault starts a
    #: cluster of that many, with every topic replicated 3 times and 2 in sync).
    brokers: int = 1


def _kill_and_restart(child: str) -> Callable[[Platform, FaultTiming, Callable[[], None]], None]:
    def inject(platform: Platform, timing: FaultTiming, mark_end: Callable[[], None]) -> None:
        platform.children[child].kill()
        time.sleep(timing.kill_pause_s)
        mark_end()
        platform.children[child].start()

    return inject


def _outage(service: str) -> Callable[[Platform, FaultTiming, Callable[[], None]], None]:
    def inject(platform: Platform, timing: FaultTiming, mark_end: Callable[[], None]) -> None:
        begun = time.monotonic()
        platform.stack.stop_service(service)  # SIGTERM: a clean shutdown
        time.sleep(max(0.0, timing.outage_s - (time.monotonic() - begun)))
        mark_end()
        platform.stack.start_service(service)

    return inject


def _kill_broker(node: str) -> Callable[[Platform, FaultTiming, Callable[[], None]], None]:
    def inject(platform: Platform, timing: FaultTiming, mark_end: Callable[[], None]) -> None:
        platform.stack.kill_service(node)  # SIGKILL: no controlled shutdown, no leader handover
        time.sleep(timing.outage_s)
        mark_end()
        platform.stack.start_service(node)

    return inject


def _restart(service: str) -> Callable[[Platform, FaultTiming, Callable[[], None]], None]:
    def inject(platform: Platform, timing: FaultTiming, mark_end: Callable[[], None]) -> None:
        platform.stack.stop_service(service)  # SIGTERM: Mosquitto saves its persistence file
        mark_end()
        platform.stack.start_service(service)

    return inject


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "bridge-kill",
            "SIGKILL the bridge (MQTT -> Kafka) and start it again",
            _kill_and_restart("bridge"),
        ),
        Fault(
            "worker-kill",
            "SIGKILL one of the two Faust workers and start it again (same port, same data)",
            _kill_and_restart("worker-0"),
            restarts_worker="worker-0",
        ),
        Fault(
            "sink-kill",
            "SIGKILL the sink (Kafka -> InfluxDB) and start it again",
            _kill_and_restart("sink"),
        ),
        Fault(
            "kafka-outage",
            "stop Kafka (SIGTERM) for the outage, then start it again on the same data",
            _outage("kafka"),
        ),
        Fault(
            "mosquitto-restart",
            "stop Mosquitto (SIGTERM, persistence on) and start it again at once",
            _restart("mosquitto"),
        ),
        Fault(
            "tsdb-outage",
            "stop InfluxDB for the outage, then start it again on the same data",
            _outage("influxdb"),
        ),
        Fault(
            "kafka-broker-kill",
            "SIGKILL one of three Kafka brokers (topics replicated 3 times, 2 in sync) for the "
            "outage, then start it again on the same data",
            _kill_broker("kafka-2"),
            brokers=3,
        ),
    )
}

#: What a run does when no fault is named: every fault of the one-broker platform.
#: ``kafka-broker-kill`` runs when named (``--faults kafka-broker-kill``): on three brokers.
DEFAULT_FAULTS: tuple[str, ...] = tuple(n for n, f in FAULTS.items() if f.brokers == 1)


def fault_names(text: str | None) -> list[str]:
    """The faults a ``--faults`` value names (comma-separated), in the run's order; the
    default ones for None. An unknown name is a ValueError that lists the known ones.

    >>> fault_names("tsdb-outage, bridge-kill")
    ['bridge-kill', 'tsdb-outage']
    >>> fault_names(None) == list(DEFAULT_FAULTS) and "kafka-broker-kill" not in DEFAULT_FAULTS
    True
    """
    if text is None:
        return list(DEFAULT_FAULTS)
    asked = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(asked - set(FAULTS))
    if unknown or not asked:
        raise ValueError(
            f"unknown fault(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(FAULTS)}"
        )
    return [name for name in FAULTS if name in asked]
