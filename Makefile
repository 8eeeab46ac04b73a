# pte_rl: the two commands of the README, and their set-up.
#   make run    trains the embedded default (tiny policy, arith task, PTE reward) on CPU
#   make test   runs the test suite
# Both create .venv on first use (torch 2.13.0 CPU first, then the project) and reuse it afterwards.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pte_rl-installed
ARGS ?=

.PHONY: run test venv bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/accelerate launch --config_file launch/accelerate_cpu.yaml recipes/grpo_pte.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
