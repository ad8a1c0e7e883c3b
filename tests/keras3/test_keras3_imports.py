"""`import lth_keras.keras3` loads Keras 3 and NumPy only: no TensorFlow under JAX or torch."""

import json
import os
import subprocess
import sys

import pytest
from keras3_models import BACKEND

HERE = os.path.dirname(os.path.abspath(__file__))

PROBE = """
import json, os, sys
{work}
import keras
heavy = ("tensorflow", "tf_keras", "tensorflow_model_optimization")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({{
    "heavy": heavy,
    "keras": keras.__version__,
    "backend": keras.backend.backend(),
    "legacy": os.environ.get("TF_USE_LEGACY_KERAS"),
}}))
"""
IMPORTS = "import lth_keras.keras3, lth_keras.masks, lth_keras.storage, lth_keras.validation"
# The controls on a Keras 3 model, through the top-level package (which picks the adapter).
CONTROLS = """
import lth_keras
from keras3_models import dense_model
model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
theta_0 = lth_keras.take_snapshot(model)
lth_keras.reinit(model, seed=1)
lth_keras.random_prune(model, theta_0, seed=2)
"""


def _probe(work=IMPORTS):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(work=work)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow is the backend here")
def test_under_jax_or_torch_no_tensorflow_is_imported():
    seen = _probe()
    assert seen["heavy"] == []
    assert seen["backend"] == BACKEND


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow is the backend here")
def test_under_jax_or_torch_the_controls_on_a_keras3_model_import_no_tensorflow():
    seen = _probe(CONTROLS)
    assert seen["heavy"] == []
    assert seen["backend"] == BACKEND


def test_keras_stays_keras_3_although_lth_keras_sets_tf_use_legacy_keras():
    seen = _probe()
    assert seen["legacy"] == "1"
    assert seen["keras"].startswith("3.")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="needs TensorFlow and tf_keras")
def test_under_tensorflow_tf_keras_is_keras_2_and_keras_is_keras_3_side_by_side():
    import keras

    import lth_keras

    assert lth_keras.keras.__version__.startswith("2.")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert isinstance(model, keras.Model) and not isinstance(model, lth_keras.keras.Model)
