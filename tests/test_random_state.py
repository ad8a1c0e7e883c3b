"""A model's random layers keep their state in its checkpoints (issue 14): restored, it draws on
exactly as the saved one would have. The SIGKILL test of a run with dropout is in test_interruptions."""

import numpy as np
import pytest
import tensorflow as tf

import lth_keras
from lth_keras import random_state
from lth_keras.keras_internals import KerasInternalsChanged
from tests.conftest import compile_model, dense_data

keras = lth_keras.keras


def _noisy_model(**random_layer_options):
    """20 -> 16 -> dropout -> Gaussian noise -> 4, pruning-wrapped as a lottery run's."""
    init = lambda i: keras.initializers.GlorotNormal(seed=i)  # noqa: E731
    inputs = keras.Input((20,), name="x")
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=init(0), name="fc1")(inputs)
    h = keras.layers.Dropout(0.5, seed=7, name="dropout", **random_layer_options)(h)
    h = keras.layers.GaussianNoise(0.1, seed=8, name="noise", **random_layer_options)(h)
    outputs = keras.layers.Dense(4, kernel_initializer=init(1), name="out")(h)
    return lth_keras.prune_for_lottery(keras.Model(inputs, outputs))


def _trained(model, steps: int):
    x, y = dense_data(32 * steps)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    return model


def _weights(model):
    return [v.numpy() for v in model.weights]


@pytest.mark.parametrize("options", [{}, {"rng_type": "stateful"}], ids=["legacy_ops", "keras_generator"])
@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
def test_a_restored_model_trains_on_as_the_saved_one(tmp_path, options, jit_compile):
    def fresh():
        model = random_state.checkpoint_random_state(_noisy_model(**options))
        return compile_model(model, jit_compile=jit_compile)

    saved = _trained(fresh(), 3)
    path = tf.train.Checkpoint(model=saved, optimizer=saved.optimizer).write(str(tmp_path / "checkpoint"))
    expected = _weights(_trained(saved, 4))

    restored = _trained(fresh(), 1)  # other weights and random state, all overwritten by the restore
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).read(path).assert_consumed()
    for want, got in zip(expected, _weights(_trained(restored, 4))):
        np.testing.assert_array_equal(want, got)


def test_the_random_state_is_no_weight_and_switching_twice_changes_nothing():
    model = _noisy_model()
    weights = [v.name for v in model.weights]
    snapshot_keys = set(lth_keras.take_snapshot(model))
    random_state.checkpoint_random_state(model)
    generator = getattr(model.get_layer("dropout"), random_state.RANDOM_STATE)
    assert isinstance(generator, tf.random.Generator)
    random_state.checkpoint_random_state(model)
    assert getattr(model.get_layer("dropout"), random_state.RANDOM_STATE) is generator
    assert [v.name for v in model.weights] == weights
    assert set(lth_keras.take_snapshot(model)) == snapshot_keys
    assert model.get_layer("dropout").get_config()["rng_type"] == "stateful"


@pytest.mark.parametrize("attribute", ["_rng_type", "_seed"])
def test_a_keras_random_generator_without_its_attributes_raises(monkeypatch, attribute):
    model = _noisy_model()
    monkeypatch.delattr(model.get_layer("dropout")._random_generator, attribute)  # as if renamed
    message = rf"RandomGenerator\.{attribute}\).*tf_keras {keras.__version__}"
    with pytest.raises(KerasInternalsChanged, match=message):
        random_state.checkpoint_random_state(model)
