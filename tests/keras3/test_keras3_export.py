"""lth_keras.export on Keras 3 models, on whichever backend runs: the `.keras` file predicts as
the stripped model, holds the pruned weights as exactly 0, and formats that cannot be written
here are refused naming why, with nothing written."""

import importlib.util
import os

import numpy as np
import pytest
from keras3_models import compiled, dense_data, dense_model, fit, prune_round

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.exported import load_exported

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def _ticket():
    model = compiled(lth3.prune_for_lottery(dense_model(), pruning_rate=0.5))
    fit(model, dense_data())
    return model, prune_round(model)


def test_a_keras_file_predicts_as_the_stripped_model_with_pruned_weights_exactly_zero(tmp_path):
    model, masks = _ticket()
    inputs = dense_data(32, seed=3)[0]
    exported = lth_keras.export(model, tmp_path / "m.keras", format="keras", check_inputs=inputs)
    assert exported.max_difference <= 1e-6
    back = load_exported(str(tmp_path / "m.keras"), "keras", keras3=True)
    np.testing.assert_allclose(back.predict(inputs), lth3.strip(model).predict(inputs, verbose=0), rtol=1e-5)
    for key, mask in masks.items():
        layer = key.split("/")[0]
        (stored,) = [v for name, v in back.parameters.items() if name.startswith(f"{layer}/kernel")]
        assert np.all(stored[mask == 0] == 0) and np.count_nonzero(stored[mask == 1]), key


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="Keras 3's SavedModel export needs TensorFlow")
def test_a_saved_model_predicts_as_the_stripped_model(tmp_path):
    model, _ = _ticket()
    exported = lth_keras.export(model, tmp_path / "saved", format="saved_model")
    assert exported.max_difference <= 1e-5 and os.path.isdir(tmp_path / "saved")


@pytest.mark.skipif(HAS_TENSORFLOW, reason="TensorFlow is installed here")
def test_a_saved_model_without_tensorflow_is_refused_saying_so(tmp_path):
    model, _ = _ticket()
    with pytest.raises(ValueError, match="TensorFlow is not installed"):
        lth_keras.export(model, tmp_path / "saved", format="saved_model")
    assert os.listdir(tmp_path) == []


def test_tflite_is_refused_for_a_keras_3_model_and_nothing_is_written(tmp_path):
    model, _ = _ticket()
    with pytest.raises(ValueError, match="not offered for a Keras 3 model"):
        lth_keras.export(model, tmp_path / "m.tflite", format="tflite")
    assert os.listdir(tmp_path) == []
