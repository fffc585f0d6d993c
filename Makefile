# rnnlab — `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# make ui's port; the MLflow links that runs print read MLFLOW_UI_PORT too (rnnlab/tracking/ui.py)
PORT ?= $(or $(MLFLOW_UI_PORT),5000)
ARGS ?=
# tests run in one pytest-xdist worker per logical CPU, at most 4 (each holds torch and its own MLflow stores);
# worksteal: a worker that runs out takes queued tests from a busy one. PARALLEL= runs them in this process.
PARALLEL ?= --numprocesses logical --maxprocesses 4 --dist worksteal
UI_STORE = $${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/logs/mlflow.db}
# this machine's pip config points at local mirrors that pip reports as "ignored"; hide only that
PIP_QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.DEFAULT_GOAL := help
.PHONY: help install train test test-all bench report ui sync lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

install: $(INSTALLED)  ## create .venv (torch 2.13.0 CPU first, then rnnlab[dev], editable)

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing torch==2.13.0, then rnnlab[dev] into $(VENV) ..."
	@$(BIN)/pip install -q torch==2.13.0 $(PIP_QUIET)
	@$(BIN)/pip install -q -e ".[dev]" $(PIP_QUIET)
	@$(BIN)/python -c "import torch, lightning, hydra, mlflow, rnnlab"
	@# the scratch LSTM's compiled gate math: built here once (~30 s, cached by torch) rather than inside the first
	@# run that needs it; without a compiler it warns and the torch-op path is used (rnnlab/nn/kernels.py)
	@echo "building the scratch LSTM's compiled gate math (once, ~30 s) ..."
	@$(BIN)/python -c "from rnnlab.nn import kernels; kernels.lstm_pointwise()" && touch $@

train: install  ## train the default experiment (extra Hydra overrides: make train ARGS="model=gru")
	$(BIN)/python train.py $(ARGS)

test: install  ## run the test suite (slow tests excluded)
	$(BIN)/python -m pytest -m "not slow" $(PARALLEL) $(ARGS)

test-all: install  ## run every test, slow ones included
	$(BIN)/python -m pytest $(PARALLEL) $(ARGS)

bench: install  ## throughput: rnnlab vs a raw loop, scratch vs fused cells, vs JoeyNMT and the PyTorch LM example; JSON lines
	$(BIN)/python experiments/throughput/bench.py $(ARGS)
	$(BIN)/python experiments/cell_speed/bench.py
	$(BIN)/python experiments/cell_speed/padded.py
	$(BIN)/python experiments/peers/bench.py

report: install  ## compare runs: table + plots per configuration (ARGS="<experiment | parent run id> [--group-by ...]")
	$(BIN)/python report.py $(ARGS)

ui: install  ## serve the MLflow UI on http://127.0.0.1:$(PORT) over logs/mlflow.db
	@mkdir -p logs
	@MLFLOW_UI_PORT=$(PORT) $(BIN)/python -m rnnlab.tracking.ui "$(UI_STORE)"
	@# the job runner (GenAI evaluation jobs: 7 extra worker processes) serves nothing rnnlab logs
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
	$(BIN)/mlflow ui --backend-store-uri "$(UI_STORE)" \
		--host 127.0.0.1 --port $(PORT)

sync: install  ## send what runs kept while the MLflow server was unreachable (ARGS=<run dir>; default logs/)
	$(BIN)/python -m rnnlab.tracking.sync $(ARGS)

lint: install  ## ruff over the package, scripts and tests
	$(BIN)/ruff check src tests experiments *.py

clean:  ## remove caches (keeps .venv and logs/)
	rm -rf .pytest_cache .ruff_cache .hypothesis src/*.egg-info
	find . -name __pycache__ -type d -prune -not -path "./.venv/*" -exec rm -rf {} +
