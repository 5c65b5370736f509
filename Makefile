# quokka-ray: `make demo` runs the quickstart sweep and fits its laws; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A machine without an NVIDIA GPU gets PyTorch's CPU build; override TORCH_SPEC for another build.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0)
PYTEST_ARGS ?=

.PHONY: setup demo test test-cluster test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/quokka run experiments/quickstart.py
	$(BIN)/quokka fit experiments/quickstart.py

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not cluster" $(PYTEST_ARGS)

# Multi-node, autoscaler, kill and outage tests and the longest Ray sweeps: more than the
# 15 minutes `make test` may take.
test-cluster: setup
	$(BIN)/python -m pytest -q -m cluster $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not cluster" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/quokka bench laws

clean:
	rm -rf $(VENV) build *.egg-info
