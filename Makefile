# The project's commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_MEMBERS ?= 20000
DEMO_MONTHS ?= 12

.PHONY: install demo serve test test-fast lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install tidings with its dev tools

demo: install  ## generate the demo retailer, import it and run the main job on SQLite
	$(BIN)/tidings demo run --members $(DEMO_MEMBERS) --months $(DEMO_MONTHS)

serve: install  ## run the API (and later the console and the dispatcher) on 127.0.0.1:8000
	$(BIN)/tidings serve

# Tests run in TEST_WORKERS processes: much of the suite waits on servers, subprocesses and the
# browser rather than on the two cores. Tests that must share a worker carry an xdist_group mark.
TEST_WORKERS ?= 4

test: install  ## every test, on SQLite and on PostgreSQL, with the browser tests
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

test-fast: install  ## a developer's quick loop: SQLite only, no slow or browser suites
	TIDINGS_SKIP_POSTGRES=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m 'not slow and not e2e'

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: install  ## every benchmark scenario; each prints its figure beside its target
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
