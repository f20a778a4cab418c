# One place for every developer and CI command. `make run` serves on the embedded default (SQLite under
# ./var); `make test` runs the whole quality gate: format, lint, types, then the test suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck pytest openapi migrate format bench clean

$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements-dev.lock -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/il6 db upgrade
	$(BIN)/il6 keys bootstrap
	$(BIN)/uvicorn app.main:create_app --factory --host $(HOST) --port $(PORT) --no-access-log --no-server-header \
		--timeout-graceful-shutdown 15

migrate: $(STAMP)
	$(BIN)/il6 db upgrade

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A benchmark, not a test: needs PostgreSQL (TEST_POSTGRES_ADMIN_URL); installs wrk from Debian's packages.
bench: $(STAMP)
	bash bench/ensure-wrk
	$(BIN)/python -m pip install --quiet -c requirements-dev.lock -e '.[bench]'
	$(BIN)/python bench/audit_appends.py --loadgen wrk

openapi: $(STAMP)
	$(BIN)/il6 openapi --output openapi/openapi.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
