# Two entry points, both from a fresh clone: `make run` (set up, then the main job) and `make test` (set up, then
# ruff and pytest). Set-up makes .venv and installs cnnbench with its dev extra into it, once per pyproject change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/cnnbench report

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet cnnbench zoo

test: lint
	$(BIN)/python -m pytest --durations=25

bench: setup
	$(BIN)/python -m pytest benchmarks/ --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks
