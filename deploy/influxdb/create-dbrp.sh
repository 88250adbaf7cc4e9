#!/bin/bash
# Runs once, after the InfluxDB 2 image's setup: map the bucket to a database name so that
# InfluxQL (the language of twin-stream's dashboards and alert rules) can query it.
set -euo pipefail
influx v1 dbrp create \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen --default \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --token "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}"
