"""Grafana as code: what maintenance engineers and ops teams see.

* ``model``: typed Grafana objects (panels, dashboards, alert rules, contact point, policy);
* ``queries``: every InfluxQL query, with the columns it must return;
* ``dashboards``: fleet overview, device detail, alerts;
* ``alert_rules``: the worker's own alerts (its pages, as the sink stores them), no data from
  the pipeline, dead-letter spikes; and routing;
* ``provisioning``: the files Grafana reads at start-up (``twin-stream grafana export``);
* ``push``: the same objects over the HTTP API (``twin-stream grafana push``).

``push`` is imported on its own (``twin_stream.grafana.push``), so that grafana-client is loaded
only by ``twin-stream grafana push``.
"""

from twin_stream.grafana.dashboards import all_dashboards
from twin_stream.grafana.provisioning import export, provisioning_files
from twin_stream.grafana.queries import ALL_QUERIES, Query, render

__all__ = ["ALL_QUERIES", "Query", "all_dashboards", "export", "provisioning_files", "render"]
