# Two entry points that do all the set-up on a fresh machine with Python 3.11+:
#   make run   - the HTTP API on the embedded SQLite store, migrated and seeded
#                (only what the service needs: requirements.lock)
#   make test  - lint, types and the whole test suite (SQLite and PostgreSQL)
#                (the service and the development tools: requirements-dev.lock)
# Both install the exact, hashed versions of the lock files; `make lock`
# re-resolves them from pyproject.toml after a dependency changes.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: run test lint lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The service alone.
$(RUN_STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(RUN_STAMP)

# The service and the development tools (a superset: run needs nothing more).
$(STAMP): requirements-dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/dateline serve --seed --host $(HOST) --port $(PORT)

# mypy reads the folders as the installed namespace (dateline.domain, ...) through
# links, since it cannot follow setuptools' editable finder.
TYPECHECK := .typecheck/dateline
$(TYPECHECK):
	mkdir -p $(TYPECHECK)
	for pkg in domain infrastructure api seeds; do ln -sfn ../../$$pkg $(TYPECHECK)/$$pkg; done

lint: $(STAMP) $(TYPECHECK)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The product's suite (tests/), then the benchmarks' own smoke test: bench/ sits
# outside the product, which never imports it.
test: lint
	$(BIN)/pytest -n 2
	$(BIN)/pytest -q -p no:cacheprovider bench/tests

lock: $(STAMP)
	$(BIN)/uv pip compile $(LOCK_FLAGS) pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile $(LOCK_FLAGS) --extra dev pyproject.toml -o requirements-dev.lock

clean:
	rm -rf $(VENV) .typecheck dateline.sqlite dateline.sqlite-wal dateline.sqlite-shm
