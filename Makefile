# The two commands of the quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench lint docs dist test-wheel clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes liteflow.core 2>/dev/null || true  # the name before 1.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python samples/demo.py

# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE, set in some
# containers): pytest keeps its assertion-rewritten test modules there, and without them every run
# parses all of tests/ again (about 2.5 s of a 2-core machine). __pycache__/ is ignored by git.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

test: $(BIN)/.installed
	$(PYTEST) -q $(PYTEST_ARGS)

# The tier a contributor runs between edits: everything but the slow, cluster, fault and browser tests.
test-fast: $(BIN)/.installed
	$(PYTEST) -q -m "not slow and not cluster and not faults and not browser" $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet dbos  # the peer the benchmarks compare against
	$(BIN)/python bench/compare.py $(COMPARE_ARGS)  # this tree against 4af9752, alternating rounds
	$(BIN)/python bench/floor.py --store memory  # the same saves in plain Python: the floor under (a)
	$(BIN)/python bench/floor.py --store sqlite
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_sqlite.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_postgres.py $(PG_BENCH_ARGS)  # skipped when PostgreSQL is not reachable

lint: $(BIN)/.installed
	$(BIN)/python -m ruff check liteflow tests samples bench
	$(BIN)/python -m ruff format --check liteflow tests samples bench
	$(BIN)/python -m mypy
	$(BIN)/python -m mypy --config-file mypy-tests.ini tests samples

# The documentation site (mkdocs.yml, docs/) into site/; any warning fails the build.
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# The sdist and wheel users install, built into dist/ and checked: twine's metadata check, then
# tests/packaging/check_dist.py (the wheel holds every file of liteflow/, the sdist the tests and docs).
dist: $(BIN)/.installed
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*
	$(BIN)/python tests/packaging/check_dist.py dist

# Installs the wheel in dist/ (not the checkout) with [all] into a fresh venv and runs the samples,
# the demo and an installed application from outside the repository (tests/packaging/installed_wheel.py).
test-wheel: $(BIN)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/packaging/installed_wheel.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache liteflow-demo.db* dist site
