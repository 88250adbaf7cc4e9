#!/bin/bash
# Runs once, after the InfluxDB 2 image's setup (which made the bucket `twin`, kept
# DOCKER_INFLUXDB_INIT_RETENTION). Map the buckets to a database and retention policies so that
# InfluxQL (the language of twin-stream's dashboards and alert rules) reads them as the local
# stack's InfluxDB 1.x has them (twin_stream/domain/retention.py): "twin"."raw" (the default,
# where the sink writes) and "twin"."summaries", hourly means of every numeric field kept
# SUMMARIES_RETENTION_DAYS days, filled by the task `hourly` (the 1.x stack's continuous query).
set -euo pipefail
auth=(--org "${DOCKER_INFLUXDB_INIT_ORG}" --token "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}")
influx v1 dbrp create "${auth[@]}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp raw --default
summaries="${DOCKER_INFLUXDB_INIT_BUCKET}_summaries"
influx bucket create "${auth[@]}" --name "${summaries}" \
  --retention "${SUMMARIES_RETENTION_DAYS:-730}d"
summaries_id=$(influx bucket list "${auth[@]}" --name "${summaries}" --hide-headers | cut -f1)
influx v1 dbrp create "${auth[@]}" \
  --bucket-id "${summaries_id}" --db "${DOCKER_INFLUXDB_INIT_BUCKET}" --rp summaries
influx task create "${auth[@]}" - <<FLUX
import "types"

option task = {name: "hourly", every: 1h}

from(bucket: "${DOCKER_INFLUXDB_INIT_BUCKET}")
  |> range(start: -task.every)
  |> filter(fn: (r) => types.isType(v: r._value, type: "float") or types.isType(v: r._value, type: "int"))
  |> aggregateWindow(every: 1h, fn: mean, createEmpty: false)
  |> map(fn: (r) => ({r with _field: "mean_" + r._field}))
  |> to(bucket: "${summaries}")
FLUX
