"""The random state of a model's training, made part of its checkpoints.

tf_keras's Dropout (like every layer it builds on `BaseRandomLayer`) draws by default from
TF1 stateful random ops, whose state lives in the op kernels rather than in a variable: a
model restored from a checkpoint draws other dropout masks than the uninterrupted run
would have. Keras's alternative, a `tf.random.Generator`, keeps its state in a variable,
but Keras leaves that out of checkpoints (for backward compatibility). `checkpoint_random_state`
gives each random layer such a generator and makes it a dependency of the layer, so any
`tf.train.Checkpoint(model=model)` saves and restores where each stream stands. The
generator is neither a weight of the model nor of a snapshot of it.
"""

import tensorflow as tf

from lth_keras._keras import keras
from lth_keras.keras_internals import internals_changed, private_attribute
from lth_keras.wrapping import flat_layers, unwrapped

_STATEFUL = "stateful"  # the rng_type of a Keras RandomGenerator backed by a tf.random.Generator
_WHAT = "a random layer's RandomGenerator"

# The name of the generator among the layer's checkpoint dependencies.
RANDOM_STATE = "random_state"


def checkpoint_random_state(model):
    """Makes every random layer of `model` (Dropout, GaussianNoise, RandomFlip...) draw from
    a `tf.random.Generator` that `tf.train.Checkpoint(model=model)` saves and restores.

    A layer on TF1 stateful ops gets a generator seeded with the layer's own seed, so the
    model's random numbers change once, and then resume exactly. Call it before the model
    first trains: steps traced before keep drawing from the old ops. Returns the model.
    """
    for layer in map(unwrapped, flat_layers(model)):
        if isinstance(layer, keras.__internal__.layers.BaseRandomLayer):
            setattr(layer, RANDOM_STATE, _stateful_generator(layer))  # tracked: checkpoints hold it
    return model


def _stateful_generator(layer):
    """The layer's tf.random.Generator, which it is first switched to if need be."""
    randomness = private_attribute(layer, "_random_generator", _WHAT)
    if private_attribute(randomness, "_rng_type", _WHAT) != _STATEFUL:
        # Still the layer's own seed: a legacy RandomGenerator only advances it when traced.
        randomness = type(randomness)(private_attribute(randomness, "_seed", _WHAT), rng_type=_STATEFUL)
        layer._random_generator = randomness
    private_attribute(randomness, "_maybe_init", _WHAT)()
    generator = private_attribute(randomness, "_generator", _WHAT)
    if not isinstance(generator, tf.random.Generator):
        raise internals_changed(f"{_WHAT}'s tf.random.Generator", f"{type(randomness).__name__}._generator")
    return generator


def random_state_variables(model) -> list:
    """The state variable of each generator `checkpoint_random_state` gave the model's layers."""
    generators = [getattr(unwrapped(layer), RANDOM_STATE, None) for layer in flat_layers(model)]
    return [generator.state for generator in generators if generator is not None]
