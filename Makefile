# The two commands of the quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python samples/demo.py

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet dbos  # the peer the benchmarks compare against
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_sqlite.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_postgres.py $(PG_BENCH_ARGS)  # skipped when PostgreSQL is not reachable

lint: $(BIN)/.installed
	$(BIN)/python -m mypy
	$(BIN)/python -m ruff check liteflow tests

clean:
	rm -rf $(VENV) .pytest_cache liteflow-demo.db*
