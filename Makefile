# Quick start: `make run` (set up + default study), `make test` (set up + tests).
# `make test-fast`: the tests that need no embedded judge, no browser, no process of
# their own and take under about 5 s each (the markers in pyproject.toml).
VENV ?= .venv
STAMP := $(VENV)/.numbias-setup

.PHONY: setup run test test-fast lint bench
FAST := not model and not slow and not browser and not subprocess
setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

run: setup
	$(VENV)/bin/numbias run

test: setup
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "$(FAST)"

# Lint (ruff check, the tree as `ruff format` leaves it, then mypy with the pydantic plugin; settings in
# pyproject.toml); CI runs it before the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/python benchmarks/bench_start.py
	$(VENV)/bin/python benchmarks/bench_trie.py
	$(VENV)/bin/python benchmarks/bench_growth.py
	$(VENV)/bin/python benchmarks/bench_throughput.py
	$(VENV)/bin/python benchmarks/bench_servers.py --n-items 40 --modes exact
	$(VENV)/bin/python benchmarks/bench_servers.py --n-items 200 --modes topk
