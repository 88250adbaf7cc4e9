# twin-stream: `make demo` runs the platform with a simulated fleet, `make test` runs the tests.
# Both set up everything they need on a fresh machine: Debian packages, the Python venv, the
# Apache Kafka jars (fetched once into .cache/, outside git) and InfluxDB (built once into .cache/
# from its Go module, with Go and cargo, which must be on the machine).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA_LIBS := .cache/kafka/libs
# Real servers the tests and the demo start as local processes (see twin_stream/devtools/stack/).
DEB_PACKAGES := mosquitto mosquitto-clients kcat
# InfluxDB OSS 1.x: the sink's v2 write API and the InfluxQL engine, one server (make influxd).
INFLUXDB_VERSION := v1.13.2
INFLUXD := .cache/influxdb/bin/influxd

.PHONY: demo test lint setup system-deps kafka-jars influxd compose-schema venv stack-up stack-down clean

# The main job: the platform on this machine with a simulated fleet, a live view and a report.
DEMO_ARGS ?=
demo: setup
	$(BIN)/twin-stream demo $(DEMO_ARGS)

test: setup lint
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

setup: system-deps venv kafka-jars influxd compose-schema

# The Compose file schema the tests validate docker-compose.yml against, taken from the last
# docker-compose release on PyPI that bundles it (no Docker needed).
COMPOSE_SCHEMA := .cache/compose-spec/compose_spec.json
compose-schema: $(COMPOSE_SCHEMA)

$(COMPOSE_SCHEMA): | venv
	rm -rf .cache/compose-spec && mkdir -p .cache/compose-spec
	$(BIN)/pip download -q --disable-pip-version-check --no-deps docker-compose==1.29.2 \
		-d .cache/compose-spec
	cd .cache/compose-spec && $(abspath $(BIN))/python -c "import zipfile, glob; \
		zipfile.ZipFile(glob.glob('*.whl')[0]).extract('compose/config/compose_spec.json')"
	mv .cache/compose-spec/compose/config/compose_spec.json $@

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

system-deps:
	@bash deploy/install-system-deps.sh $(DEB_PACKAGES)

kafka-jars: $(KAFKA_LIBS)/.complete

$(KAFKA_LIBS)/.complete: deploy/kafka/pom.xml
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies \
		-DoutputDirectory=$(abspath $(KAFKA_LIBS))
	touch $@

# InfluxDB from its Go module, into .cache/influxdb with Go's and cargo's caches beside it (3 to 4
# minutes on 2 cores, once; 3 GB). The stamp names the version: a new INFLUXDB_VERSION rebuilds.
influxd: .cache/influxdb/.built-$(INFLUXDB_VERSION)

.cache/influxdb/.built-$(INFLUXDB_VERSION): deploy/build-influxd.sh
	rm -f .cache/influxdb/.built-* $(INFLUXD)
	bash deploy/build-influxd.sh $(INFLUXDB_VERSION) .cache/influxdb
	touch $@

stack-up: setup
	$(BIN)/twin-stream stack up

stack-down: venv
	$(BIN)/twin-stream stack down

clean:
	rm -rf $(VENV) .cache .twin-stream .pytest_cache .mypy_cache .ruff_cache
