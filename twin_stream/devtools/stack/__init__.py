"""The local stack: real Mosquitto, Apache Kafka and InfluxDB as local processes (no Docker).

One job per module:

* ``runner``: :class:`Stack`, which starts the chosen services under one root, waits until they
  are ready, and stops them (``ALL_SERVICES`` names them).
* ``harness``: :class:`~twin_stream.devtools.stack.harness.ManagedProcess`, the one harness for
  every process a tool or a test starts (the stack's servers, the ``twin-stream`` bridge,
  workers and sink): start in its own process group with its log, wait until ready (a URL, a
  port, any probe), stop, kill, start again, and a crash told with the end of its log.
* ``service``: :class:`~twin_stream.devtools.stack.service.Service`, what every service shares
  (its config and command, its readiness probe, how it describes itself), run by the harness.
* ``mosquitto``, ``kafka``, ``influxdb``: one service each, with how to find its binary
  (:func:`find_kafka_libs`, :func:`find_influxd`) and its constants.
* ``state``: the state file (``<root>/state.json``), :func:`status` and :func:`stop`.
* ``processes``: process control below the harness (tie a child to its parent, stop a process
  group by pid, whether a pid runs, read a log's tail).
* ``probes``: a free port, an open port, an HTTP GET, an MQTT login.
* ``certs``: the private CA and the certificates of MQTT over TLS (Mosquitto's TLS listener,
  and ``twin-stream certs make``).

This package re-exports what callers import from ``twin_stream.devtools.stack``.
"""

from __future__ import annotations

from twin_stream.devtools.stack.harness import ManagedProcess
from twin_stream.devtools.stack.influxdb import INFLUXDB_VERSION, find_influxd
from twin_stream.devtools.stack.kafka import find_kafka_libs
from twin_stream.devtools.stack.probes import free_port, mqtt_login_accepted, port_is_open
from twin_stream.devtools.stack.processes import die_with_parent
from twin_stream.devtools.stack.runner import ALL_SERVICES, Stack
from twin_stream.devtools.stack.state import ServiceInfo, StackState, status, stop

__all__ = [
    "ALL_SERVICES",
    "INFLUXDB_VERSION",
    "ManagedProcess",
    "ServiceInfo",
    "Stack",
    "StackState",
    "die_with_parent",
    "find_influxd",
    "find_kafka_libs",
    "free_port",
    "mqtt_login_accepted",
    "port_is_open",
    "status",
    "stop",
]
