"""The pure domain core: schemas, twin state, detectors and alert policy. No I/O happens here.

* ``messages``: the wire protocol (device -> platform and back), validated;
* ``topics``: MQTT and Kafka topic names;
* ``devices``: device types and their signals' specifications;
* ``twin``: a device's twin (reported, desired, connectivity, health);
* ``commands``: a twin's commands, desired state as a contract (statuses, acks, withdrawals);
* ``events``: what the platform emits (scores, predictions, alerts, commands);
* ``records``: what it records (twins' views, lifecycle events, fleet lessons, dead letters,
  the audit trail);
* ``detection``: the detector (see its package);
* ``alerting``: the alert policy;
* ``monitor``: :class:`DeviceMonitor`, detector and policy for one device: the one path the
  worker, the demo, the evaluations and the benchmarks all run.
"""

from __future__ import annotations

from twin_stream.domain.alerting import POLICY_VERSION, AlertPolicy
from twin_stream.domain.devices import DeviceType, MetricSpec, metric_spec
from twin_stream.domain.events import Alert, AnomalyScore, Command, Prediction, ScoreRecord
from twin_stream.domain.messages import Telemetry, parse_telemetry
from twin_stream.domain.monitor import DeviceMonitor, MonitorOutput
from twin_stream.domain.topics import kafka_topics, mqtt_topic
from twin_stream.domain.twin import Twin

__all__ = [
    "POLICY_VERSION",
    "Alert",
    "AlertPolicy",
    "AnomalyScore",
    "Command",
    "DeviceMonitor",
    "DeviceType",
    "MetricSpec",
    "MonitorOutput",
    "Prediction",
    "ScoreRecord",
    "Telemetry",
    "Twin",
    "kafka_topics",
    "metric_spec",
    "mqtt_topic",
    "parse_telemetry",
]
