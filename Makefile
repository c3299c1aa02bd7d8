# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   builds a venv, generates ~90 days of bronze data and runs the pipeline on DuckDB
#   make test   builds a venv, runs the lint gate, then every test
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)
export RIDESHARE_DUCKDB_PATH ?= $(CURDIR)/rideshare.duckdb
export DBT_PROFILES_DIR ?= $(CURDIR)

# The BigQuery emulator (tests/bigquery) lives in its own venv: it needs other duckdb and
# grpc pins than the project. Built from requirements-bqemu.lock, fully offline afterwards.
BQEMU := .bqemu
BQEMU_STAMP := $(BQEMU)/.installed-$(shell cat requirements-bqemu.lock scripts/bqemu/install_spatial.py | sha1sum | cut -c1-12)

# Airflow (dags/, tests/airflow) lives in its own venv too: Airflow 3 brings its own pins. It
# gets requirements.lock plus requirements-airflow.lock (what Airflow adds, resolved together
# with the project's pins), both with --no-deps and checked by `pip check`, then the project.
AIRFLOW := .airflow
AIRFLOW_STAMP := $(AIRFLOW)/.installed-$(shell cat requirements.lock requirements-airflow.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: venv bqemu airflow demo test lint fmt bench clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Error: $(PYTHON) not found; install Python 3.11"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

profiles.yml: profiles.yml.example
	cp profiles.yml.example profiles.yml

venv: $(STAMP) profiles.yml

$(BQEMU_STAMP): requirements-bqemu.lock scripts/bqemu/install_spatial.py
	@command -v $(PYTHON) >/dev/null || { echo "Error: $(PYTHON) not found; install Python 3.11"; exit 2; }
	test -x $(BQEMU)/bin/python || $(PYTHON) -m venv $(BQEMU)
	echo '*' > $(BQEMU)/.gitignore
	$(BQEMU)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements-bqemu.lock
	$(BQEMU)/bin/pip check --disable-pip-version-check
	mkdir -p $(BQEMU)/home
	HOME=$(CURDIR)/$(BQEMU)/home $(BQEMU)/bin/python scripts/bqemu/install_spatial.py
	rm -f $(BQEMU)/.installed-*
	touch $@

bqemu: $(BQEMU_STAMP)

$(AIRFLOW_STAMP): requirements.lock requirements-airflow.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Error: $(PYTHON) not found; install Python 3.11"; exit 2; }
	test -x $(AIRFLOW)/bin/python || $(PYTHON) -m venv $(AIRFLOW)
	echo '*' > $(AIRFLOW)/.gitignore
	$(AIRFLOW)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock -r requirements-airflow.lock
	$(AIRFLOW)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(AIRFLOW)/bin/pip check --disable-pip-version-check
	rm -f $(AIRFLOW)/.installed-*
	touch $@

airflow: $(AIRFLOW_STAMP)

# Headless Chromium renders the HTML report in tests/integration/test_report.py: Debian's
# package (chromium-headless-shell where apt offers it, else chromium), never a browser a
# tool downloads. Installed only when neither is on PATH; needs root (or sudo) for apt.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || command -v chromium-headless-shell >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && \
		PKG=$$(apt-cache policy chromium-headless-shell | grep -q 'Candidate: [0-9]' \
			&& echo chromium-headless-shell || echo chromium); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$PKG; }

demo: venv
	$(BIN)/python -m orchestrator demo

lint: venv
	$(BIN)/ruff check orchestrator tests bench dags
	$(BIN)/ruff format --check orchestrator tests bench dags
	$(BIN)/mypy
	RIDESHARE_DUCKDB_PATH=:memory: $(BIN)/sqlfluff lint models macros snapshots tests/dbt
	$(BIN)/python -m orchestrator.cli_reference --check README.md
	$(BIN)/pytest -q tests/hygiene

fmt: venv
	$(BIN)/ruff check --fix orchestrator tests bench dags
	$(BIN)/ruff format orchestrator tests bench dags
	RIDESHARE_DUCKDB_PATH=:memory: $(BIN)/sqlfluff fix models macros snapshots tests/dbt

test: lint bqemu airflow chromium
	$(BIN)/pytest -q -n 2 --ignore=tests/hygiene tests

bench: venv
	$(BIN)/python bench/backfill_bench.py
	$(BIN)/python bench/storage_bench.py --warehouse bench/data/built.duckdb

clean:
	rm -rf $(VENV) $(BQEMU) $(AIRFLOW) target logs rideshare.duckdb
