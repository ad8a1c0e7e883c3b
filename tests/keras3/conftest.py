"""Tiny Keras 3 models and data for tests/keras3, on whichever backend KERAS_BACKEND names.

This directory runs without TensorFlow (in .venv-jax and .venv-torch): it imports nothing
from tests/ and is run there with --confcutdir=tests/keras3, so tests/conftest.py (which
imports tf_keras) is not loaded. Under `pytest tests` in .venv it runs on TensorFlow.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
from keras3_models import dense_data  # noqa: E402


@pytest.fixture
def data():
    return dense_data()
