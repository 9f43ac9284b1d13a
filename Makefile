# Two commands for a newcomer: `make demo` (the whole ML lifecycle end to end on the devstack) and
# `make test` (the whole suite). Both set up what they need from the repository's own files.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.12.3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dev.lock.sha256
MWAA_CONSTRAINTS_LOCATION ?=
ENV ?= local
MWAA_ENVIRONMENT ?=

export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
export AIRFLOW_HOME ?= $(CURDIR)/.devstack/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL := 0

.PHONY: help setup postgres images test test-fast lint format lock devstack-up devstack-down devstack-status demo bench bench-parse bench-extract bench-load bench-devstack bench-slots bench-backfill bench-demo bench-demo-train bench-mwaa-local security dist deploy ui mwaa-local browser clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

setup: $(UV)  ## create .venv from requirements/dev.lock (fast when already done)
	@want=$$(sha256sum requirements/dev.lock | cut -d' ' -f1); \
	if [ -x $(PY) ] && [ "$$(cat $(STAMP) 2>/dev/null)" = "$$want" ]; then \
		echo "setup: .venv is up to date"; \
	else \
		[ -x $(PY) ] || $(UV) venv --quiet --python 3.11 $(VENV); \
		$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements/dev.lock && echo "$$want" > $(STAMP) && \
		echo "setup: .venv synced from requirements/dev.lock"; \
	fi

lock: $(UV)  ## re-resolve requirements/dev.lock under MWAA's constraints (requirements/mwaa/, or MWAA_CONSTRAINTS_LOCATION)
	@loc=$${MWAA_CONSTRAINTS_LOCATION:-requirements/mwaa/3.3.1}; \
	grep -viE '^(numpy|scipy)==' $$loc/airflow-constraints-py3.12.txt > requirements/dev-constraints.txt
	$(UV) pip compile --quiet --python-version 3.11 --no-header --generate-hashes \
		-c requirements/dev-constraints.txt requirements/dev.in -o requirements/dev.lock

postgres:  ## Debian's PostgreSQL server, the local MWAA runtime's metadata database (apt-get when running as root)
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "postgres: installing postgresql with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "postgres: PostgreSQL's server is missing; install it (sudo apt-get install postgresql) or the MWAA runtime will not start"; \
	fi

browser:  ## Debian's Chromium for the browser test (installed with apt-get when running as root)
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser: installing chromium with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "browser: chromium is missing; install it (sudo apt-get install chromium) or the UI test will fail"; \
	fi

# Each end-to-end suite owns a devstack of its own (a fresh pytest session), so no suite sees another's
# endpoints, model versions or schedules; everything else shares one session. tools/test_lanes.py runs these
# sessions in LANES lanes at once (LANES=1: one after the other), each session's log printed whole when it ends.
ISOLATED_SUITES = $(sort $(wildcard tests/e2e/test_*.py)) tests/faults tests/ui
LANES ?= 2

# The dependency audit reads advisories from PyPI's JSON API. A machine that cannot reach it (offline, or a
# network that allows only the package index) declares itself offline, so the audit reports itself skipped
# with that reason instead of failing; set ML_LIFECYCLE_AUDIT_OFFLINE yourself to decide either way.
export AUDIT_PROBE := import urllib.request; urllib.request.urlopen("https://pypi.org/pypi/requests/2.19.0/json", timeout=5)

images: setup  ## build every image environment of the devstack (what its jobs run in) from the package index
	$(PY) -m devstack images

# Jobs on the devstack run in their image's environment, built with uv from the package index on first use;
# building them all before the tests keeps the index out of the tests themselves.
test: setup browser postgres images  ## set up, then run the whole suite (lint included) in LANES lanes (default 2)
	@if [ -z "$${ML_LIFECYCLE_AUDIT_OFFLINE:-}" ] && ! $(PY) -c "$$AUDIT_PROBE" >/dev/null 2>&1; then \
		echo "test: PyPI's JSON API does not answer from here: the dependency audit is skipped (ML_LIFECYCLE_AUDIT_OFFLINE=1)"; \
		export ML_LIFECYCLE_AUDIT_OFFLINE=1; \
	fi; \
	$(PY) -m tools.test_lanes --lanes $(LANES) $(ISOLATED_SUITES)

test-fast: setup  ## the suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow" $(addprefix --ignore=,$(ISOLATED_SUITES))

lint: setup  ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

LOCAL_BUCKET = $$($(PY) -c 'from ml_lifecycle.config import load_config; print(load_config("local").storage.bucket)')

devstack-up: setup  ## start the local AWS + Snowflake stand-in in the background (seeded)
	$(PY) -m devstack up --bucket $(LOCAL_BUCKET)

devstack-down:  ## stop the devstack (state is kept under .devstack/)
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "devstack: not set up"; fi

devstack-status:  ## what runs where
	@if [ -x $(PY) ]; then $(PY) -m devstack status; else echo "devstack: not set up"; fi

# DEMO=lifecycle (default): the whole loop with Airflow's scheduler, on a PostgreSQL metadata database;
# DEMO=train: train_model once with `airflow dags test` (SQLite), the short run
DEMO ?= lifecycle
demo: devstack-up $(if $(filter train,$(DEMO)),,postgres)  ## the whole ML loop on the devstack with Airflow's scheduler (DEMO=train: train_model only)
	$(PY) scripts/demo.py --demo $(DEMO) --num-round 40
	@echo "The devstack keeps running for exploration (make devstack-status); make devstack-down stops it."

ui: setup  ## the Airflow UI with scheduler, dag-processor and triggerer on the devstack (Ctrl-C stops Airflow)
	$(PY) -m tools.ui

dist: setup  ## build the MWAA bundle into dist/mwaa (same sources -> same bytes)
	$(PY) -m tools.dist

# The bundle run as MWAA runs it: its own virtualenv from dist/mwaa/requirements.txt under MWAA's constraint files
# (requirements/mwaa/, or MWAA_CONSTRAINTS_LOCATION), AIRFLOW_HOME laid out as MWAA does, the devstack behind it.
mwaa-local: dist postgres  ## run dist/mwaa as MWAA runs it, on the devstack (Ctrl-C stops Airflow; docs/how-to/deploy-to-mwaa.md)
	$(PY) -m tools.mwaa_local start $(MWAA_LOCAL_ARGS)

deploy: setup  ## upload dist/mwaa to ENV's bucket: make deploy ENV=dev [MWAA_ENVIRONMENT=name]
	$(PY) -m tools.deploy --env $(ENV) $(if $(MWAA_ENVIRONMENT),--mwaa-environment $(MWAA_ENVIRONMENT))

bench: bench-parse bench-extract bench-load bench-devstack bench-slots bench-backfill bench-demo bench-demo-train bench-mwaa-local  ## every benchmark (results in benchmarks/results/)

bench-parse: setup  ## DAG parse time per file beyond importing Airflow, against a ten-operator reference
	$(PY) benchmarks/dag_parse.py

bench-extract: setup  ## extraction peak memory and rows/s, stream and unload modes, at 100k, 1M, 5M rows vs the raw connector (~8 min)
	$(PY) benchmarks/extraction.py
	$(PY) benchmarks/extraction.py --rows 5000000 --methods operator_chunked_source operator_unload --merge

bench-load: setup  ## batch_score's load of 100k predictions into the Snowflake stand-in, seconds and CPU (~1 min)
	$(PY) benchmarks/load.py

bench-devstack: setup  ## devstack start/stop and per-job overhead of its SageMaker service (~2 min)
	$(PY) benchmarks/devstack_start.py
	$(PY) benchmarks/devstack_overhead.py

bench-slots: setup  ## worker-slot share of a SageMaker wait, deferrable vs sync (~4 min)
	$(PY) benchmarks/worker_slots.py

# Airflow refuses concurrent backfills on SQLite: the benchmark starts a throwaway PostgreSQL cluster from Debian's
# server binaries (tools/metadb.py), or uses BENCH_SQL_ALCHEMY_CONN.
bench-backfill: setup postgres  ## 10-interval batch_score backfill, parallel vs sequential, on a throwaway PostgreSQL (~15 min)
	$(PY) benchmarks/backfill.py

bench-demo: setup postgres  ## make demo's wall time (the whole loop), first and warm, per stage (~12 min)
	$(PY) benchmarks/demo_wall.py

bench-demo-train: setup  ## make demo DEMO=train's wall time, warm, with a per-task breakdown (~7 min)
	$(PY) benchmarks/demo_wall.py --training-only

bench-mwaa-local: dist postgres  ## make mwaa-local's warm start, up to the four DAGs parsed without import errors (~6 min)
	$(PY) benchmarks/mwaa_local_start.py

security: setup  ## bandit, pip-audit (needs PyPI's JSON API) and the secrets scan on the devstack
	$(PY) -m pytest tests/security

clean:  ## remove build outputs and caches (keeps .venv, .devstack and .mwaa-local)
	rm -rf dist .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
