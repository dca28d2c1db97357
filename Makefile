# The README's two commands: `make demo` (the lab's report) and `make test`.
# Both build .venv from nothing: torch is pinned to the CPU wheel on the machine's disk.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PIP = $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint bench gpu-check setup-lab setup-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0

$(VENV)/.lab: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[lab]"
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[dev]"
	touch $@

setup-lab: $(VENV)/.lab
setup-dev: $(VENV)/.dev

demo: setup-lab
	$(BIN)/optzoo demo

test: setup-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 -q src tests

bench: setup-dev
	$(BIN)/python benchmarks/step_speed.py
	$(BIN)/python benchmarks/same_bytes.py

# On a machine with a GPU and a CUDA build of torch (its own python3, not the CPU-only .venv): the
# accelerator tests and the step-speed benchmark on cuda. Results go to $(GPU_OUT).
GPU_OUT ?= gpu-check-results
gpu-check:
	mkdir -p $(GPU_OUT)
	PYTHONPATH=src:tests $(PYTHON) -m pytest -q -p no:cacheprovider -o addopts="" -m cuda tests/test_cuda.py \
		--junitxml=$(GPU_OUT)/test_cuda.xml
	PYTHONPATH=src $(PYTHON) benchmarks/step_speed.py --device cuda --size 16 --repeats 2 \
		--only sgd,sgd-momentum,nesterov,adam,adamw,amsgrad,adagrad,rmsprop,adadelta,adamax,nadam,radam,rprop --out $(GPU_OUT)/step_speed_cuda
