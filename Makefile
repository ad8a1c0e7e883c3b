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

# All tests: tests/ on .venv (tf_keras, and tests/keras3 on Keras 3's TensorFlow backend), then
# tests/keras3 on the JAX and torch backends in their own venvs (no TensorFlow there).
# tests/ runs in TEST_WORKERS pytest-xdist processes, a file each at a time (a file's
# module fixtures are made once): on 2 cores, 16.5 min against 26.7 in one process.
TEST_WORKERS ?= 2
test: lint keras3-envs $(VENV)/.backends
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests
	KERAS_BACKEND=jax .venv-jax/bin/python $(KERAS3_PYTEST)
	KERAS_BACKEND=torch .venv-torch/bin/python $(KERAS3_PYTEST)

# Keras 3 on its other backends (issue 17), each in a venv of its own beside .venv, which
# keeps TensorFlow: .venv-jax and .venv-torch hold Keras 3, one backend, the test tools and
# this project (--no-deps: setup.py's requirements are TensorFlow's). torch==2.13.0 is
# the CPU wheel in /opt/wheels (pip's find-links here), not a CUDA build from PyPI.
KERAS3_PACKAGES := keras==3.15.1 numpy pytest hypothesis
KERAS3_BACKEND_PACKAGES_jax := 'jax[cpu]==0.10.2'
KERAS3_BACKEND_PACKAGES_torch := torch==2.13.0

.PHONY: keras3-envs test-keras3

.venv-%/.installed: setup.py
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip
	.venv-$*/bin/python -m pip install -q $(KERAS3_PACKAGES) $(KERAS3_BACKEND_PACKAGES_$*)
	.venv-$*/bin/python -m pip install -q -e . --no-deps
	touch $@

keras3-envs: .venv-jax/.installed .venv-torch/.installed

# JAX and torch in .venv too, beside TensorFlow: the scripts' --backend=jax|torch run there
# (they write TensorBoard and read data with TensorFlow); tests/test_backends.py runs them.
$(VENV)/.backends: $(VENV)/.installed
	$(PY) -m pip install -q $(KERAS3_BACKEND_PACKAGES_jax) $(KERAS3_BACKEND_PACKAGES_torch)
	touch $@

# tests/keras3 on the three backends, one after the other; --confcutdir keeps pytest from
# loading tests/conftest.py, which imports tf_keras (not in .venv-jax or .venv-torch).
KERAS3_PYTEST := -m pytest -q -p no:cacheprovider --confcutdir=tests/keras3 tests/keras3
test-keras3: install keras3-envs
	KERAS_BACKEND=tensorflow $(PY) $(KERAS3_PYTEST)
	KERAS_BACKEND=jax .venv-jax/bin/python $(KERAS3_PYTEST)
	KERAS_BACKEND=torch .venv-torch/bin/python $(KERAS3_PYTEST)
