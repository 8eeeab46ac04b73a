# pte_rl: the two commands of the README, and their set-up.
#   make run    trains the embedded default (tiny policy, arith task, PTE reward) on CPU; the tiny policy
#               ships in the package (pte_rl/tiny/default/) and is copied into the cache, not built
#   make test   runs ruff, mypy (the targets in pyproject.toml), then the test suite; fails on any of them
# Both create .venv on first use (torch 2.13.0 CPU first, then the project) and reuse it afterwards.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pte_rl-installed
ARGS ?=

.PHONY: run test lint venv bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/accelerate launch --config_file launch/accelerate_cpu.yaml recipes/grpo_pte.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collects no test: make fails on it like on any other non-zero status.
test: lint
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
