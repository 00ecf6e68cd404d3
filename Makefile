# Quick start: `make run` (set up + default study), `make test` (set up + tests).
VENV ?= .venv
STAMP := $(VENV)/.numbias-setup

.PHONY: setup run test bench
setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

run: setup
	$(VENV)/bin/numbias run

test: setup
	$(VENV)/bin/python -m pytest -q

bench: setup
	$(VENV)/bin/python benchmarks/bench_start.py
	$(VENV)/bin/python benchmarks/bench_trie.py
	$(VENV)/bin/python benchmarks/bench_growth.py
