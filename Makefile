# Set-up and entry points. `make demo` and `make test` each install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: install demo lint test fashion-mnist

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

fashion-mnist:
	@test -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist)

# The main job: a short LeNet-300-100 lottery run on Fashion-MNIST, offline.
# Each run gets its own directory: results already written are never overwritten. It is
# named here, by make, so that the command make echoes shows it (the run ends by naming it too).
DEMO_FLAGS ?= --dataset=fashion_mnist --prune_iters=4 --iterations=3000
DEMO_DIR := runs/demo-$(shell date +%Y%m%d-%H%M%S)
demo: install fashion-mnist
	$(PY) -m experiments.lenet $(DEMO_FLAGS) --output_dir=$(DEMO_DIR)

lint: install
	$(VENV)/bin/ruff check lth_keras experiments tests benchmarks
	$(VENV)/bin/ruff format --check lth_keras experiments tests benchmarks

test: lint
	$(PY) -m pytest -q tests
