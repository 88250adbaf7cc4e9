"""Benchmarks behind ``twin-stream bench``: each measures against a peer in the same run.

* ``simulate``: one simulator process publishing, vs ``mosquitto_pub``;
* ``bridge``: the bridge MQTT -> Kafka, vs ``mosquitto_sub | kcat -P``;
* ``pipeline``: the worker vs a bare consumer loop, and end-to-end latency;
* ``detect``: the detector's cost per reading, its state and memory;
* ``readback``, ``machine``: counting what arrived, and describing the machine.
"""

from __future__ import annotations

from twin_stream.devtools.bench.bridge import bench_bridge
from twin_stream.devtools.bench.detect import bench_detect
from twin_stream.devtools.bench.machine import machine_info
from twin_stream.devtools.bench.pipeline import bench_e2e, bench_worker
from twin_stream.devtools.bench.simulate import bench_simulate

__all__ = [
    "bench_bridge",
    "bench_detect",
    "bench_e2e",
    "bench_simulate",
    "bench_worker",
    "machine_info",
]
