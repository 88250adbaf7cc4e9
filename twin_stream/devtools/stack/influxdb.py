"""InfluxDB OSS 1.13 (built from its Go module by ``make influxd`` into ``.cache/influxdb``).

The one time-series server of the local stack. The sink writes to it through the InfluxDB v2
write API (``/api/v2/write?bucket=DB/RP``, any token: auth is off), and dashboard and alert
queries are checked on its InfluxQL engine (``/query``). Its database ``twin`` (the sink's
default bucket) is created on start, with its retention policies and the continuous query that
keeps hourly summaries (:meth:`twin_stream.domain.retention.Retention.influx_statements`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from twin_stream.devtools.stack.probes import free_port, http_get
from twin_stream.devtools.stack.service import Service
from twin_stream.domain.retention import Retention
from twin_stream.errors import ServiceBinaryMissing, ServiceError

__all__ = ["INFLUXDB_VERSION", "INFLUX_DATABASE", "InfluxDB", "find_influxd"]

INFLUXDB_VERSION = "v1.13.2"  # what `make influxd` builds (the Makefile's INFLUXDB_VERSION)
INFLUX_DATABASE = "twin"  # created on start: the sink's default bucket
#: What a statement run again answers: a policy made before, a query not there yet.
_AGAIN = re.compile(r"already exists|not found")


def find_influxd(start: Path | None = None, override: Path | None = None) -> Path:
    """The InfluxDB server built by ``make influxd`` (``.cache/influxdb/bin/influxd``).

    Looked for like :func:`~twin_stream.devtools.stack.kafka.find_kafka_libs`; ``override``
    (the setting ``stack.influxd``) names another binary and is returned as it is.
    """
    if override is not None:
        return override
    candidates: list[Path] = []
    for base in [start or Path.cwd(), Path(__file__).resolve().parent]:
        candidates += [p / ".cache" / "influxdb" / "bin" / "influxd" for p in [base, *base.parents]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


class InfluxDB(Service):
    """InfluxDB OSS 1.13, built from its Go module by ``make influxd`` into ``.cache/influxdb``.

    One server for everything: the sink writes through the v2 write API
    (``/api/v2/write?bucket=DB/RP``), InfluxQL answers on ``/query``. Auth is off, so any token
    is accepted. ``database`` is created once the server answers, so that the sink's default
    bucket (``twin``) exists, and kept as ``retention`` says.
    """

    name = "influxdb"
    binary = "influxd"
    debian_package = ""

    def __init__(
        self,
        data_dir: Path,
        database: str,
        influxd: Path | None = None,
        retention: Retention | None = None,
    ) -> None:
        super().__init__(data_dir)
        self.rpc_port = free_port()
        self.database = database
        self.influxd = influxd  # None: the one `make influxd` built
        self.retention = retention or Retention()

    def executable(self) -> str:
        found = find_influxd(override=self.influxd)
        if not found.is_file():
            raise ServiceBinaryMissing(
                self.name, str(found), f"build InfluxDB {INFLUXDB_VERSION} with 'make influxd'"
            )
        return str(found)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ports(self) -> list[int]:
        return [self.port, self.rpc_port]

    def command(self) -> list[str]:
        # Every path in the config: the defaults write under /var/lib/influxdb and ~/.influxdb.
        d = self.data_dir
        conf = d / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  flux-enabled = false
  log-enabled = false
  max-row-limit = 0
  pprof-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = true

[subscriber]
  enabled = false
"""
        )
        return [self.executable(), "run", "-config", str(conf)]

    def environment(self) -> dict[str, str]:
        # Flux's Snowflake driver makes a credential cache dir when the server starts, by
        # default ~/.cache/snowflake: keep it in the data dir (it must exist to be used).
        cache = self.data_dir / "snowflake"
        cache.mkdir(parents=True, exist_ok=True)
        return {"SF_TEMPORARY_CREDENTIAL_CACHE_DIR": str(cache)}

    def is_ready(self) -> bool:
        status, _ = http_get(f"{self.url}/ping")
        if status != 204:
            return False
        # Each statement may run again: the same probe serves a restart on the same data.
        if self._query(f'CREATE DATABASE "{self.database}"') is not None:
            return False
        for statement in self.retention.influx_statements(self.database):
            error = self._query(statement)
            if error is not None and not _AGAIN.search(error):
                raise ServiceError(self.name, f"{statement}: {error}")
        return True

    def _query(self, statement: str) -> str | None:
        """Run one InfluxQL statement; its error, if it has one."""
        query = urllib.parse.urlencode({"q": statement}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=query, timeout=5) as response:  # noqa: S310 - loopback
            body = json.loads(response.read())
        error = body["results"][0].get("error")
        return None if error is None else str(error)

    def extra(self) -> dict[str, Any]:
        return {"rpc_port": self.rpc_port, "database": self.database, "version": INFLUXDB_VERSION}
