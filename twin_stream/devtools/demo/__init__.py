"""``twin-stream demo``: run the platform locally and watch it catch a failing device.

* ``run``: the stack, the services and the simulated fleet, and the final figures;
* ``observer``: what the platform produces, read back from Kafka;
* ``live_view``: the terminal view (rich);
* ``report``: the HTML report (plotly).
"""

from __future__ import annotations

from twin_stream.devtools.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
