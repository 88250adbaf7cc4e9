"""The local stack: real Mosquitto, Apache Kafka and InfluxDB as local processes (no Docker).

One job per module:

* ``runner``: :class:`Stack`, which starts the chosen services under one root, waits until they
  are ready, and stops them (``ALL_SERVICES`` names them).
* ``service``: :class:`~twin_stream.devtools.stack.service.Service`, what every service shares
  (start in its own process group, wait until ready, describe itself).
* ``mosquitto``, ``kafka``, ``influxdb``: one service each, with how to find its binary
  (:func:`find_kafka_libs`, :func:`find_influxd`) and its constants.
* ``state``: the state file (``<root>/state.json``), :func:`status` and :func:`stop`.
* ``processes``: process control (tie a child to its parent, stop a process group, read a log's
  tail) and :func:`~twin_stream.devtools.stack.processes.subcommand` for ``twin-stream`` children.
* ``probes``: a free port, an open port, an HTTP GET, an MQTT login.
* ``certs``: the private CA and the certificates of MQTT over TLS (Mosquitto's TLS listener,
  and ``twin-stream certs make``).

This package re-exports what callers import from ``twin_stream.devtools.stack``.
"""

from __future__ import annotations

from twin_stream.devtools.stack.influxdb import INFLUXDB_VERSION, find_influxd
from twin_stream.devtools.stack.kafka import find_kafka_libs
from twin_stream.devtools.stack.probes import free_port, mqtt_login_accepted, port_is_open
from twin_stream.devtools.stack.processes import die_with_parent
from twin_stream.devtools.stack.runner import ALL_SERVICES, Stack
from twin_stream.devtools.stack.state import ServiceInfo, StackState, status, stop

__all__ = [
    "ALL_SERVICES",
    "INFLUXDB_VERSION",
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
