"""Tiny Keras 3 models, data and training helpers for tests/keras3 (any backend)."""

import keras
import numpy as np

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.masks import magnitude_prune

BACKEND = keras.backend.backend()


def _init(seed):
    return keras.initializers.GlorotNormal(seed=seed)


def dense_model(seed: int = 0, name: str = "tiny_dense", regularized: bool = False):
    """20 -> fc1 16 -> bn -> fc2 12 -> out 4: three prunable kernels, biases and batch-norm
    (`regularized`: fc1 with an activity regularizer, fc2 with a kernel regularizer)."""
    l2 = keras.regularizers.L2(1e-2) if regularized else None
    inputs = keras.Input((20,), name="x")
    h = keras.layers.Dense(
        16, activation="relu", kernel_initializer=_init(seed), activity_regularizer=l2, name="fc1"
    )(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dense(
        12, activation="relu", kernel_initializer=_init(seed + 1), kernel_regularizer=l2, name="fc2"
    )(h)
    outputs = keras.layers.Dense(4, kernel_initializer=_init(seed + 2), name="out")(h)
    return keras.Model(inputs, outputs, name=name)


def conv_model(seed: int = 0):
    """A Sequential of Conv2D, Conv2D, Flatten, Dense, Dense."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=_init(seed), name="conv1"),
            keras.layers.Conv2D(6, 3, activation="relu", kernel_initializer=_init(seed + 1), name="conv2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="relu", kernel_initializer=_init(seed + 2), name="fc"),
            keras.layers.Dense(3, kernel_initializer=_init(seed + 3), name="out"),
        ],
        name="tiny_conv",
    )


def mixed_model(seed: int = 0):
    """Every supported kind: Embedding, Conv1D, Conv3D (on a reshape) and Dense, two outputs."""
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(11, 4, embeddings_initializer=_init(seed), name="embed")(tokens)
    h = keras.layers.Conv1D(5, 3, kernel_initializer=_init(seed + 1), name="conv1d")(h)
    volume = keras.layers.Reshape((2, 2, 5, 1), name="volume")(h[:, :4])
    v = keras.layers.Conv3D(2, 2, padding="same", kernel_initializer=_init(seed + 2), name="conv3d")(volume)
    flat = keras.layers.Flatten(name="flat")(v)
    head_a = keras.layers.Dense(3, kernel_initializer=_init(seed + 3), name="head_a")(flat)
    head_b = keras.layers.Dense(2, kernel_initializer=_init(seed + 4), name="head_b")(flat)
    return keras.Model(tokens, [head_a, head_b], name="mixed")


def dense_data(n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    return x, x[:, :4].argmax(axis=1).astype(np.int32)


def compiled(model, optimizer=None):
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def fit(model, data, steps: int = 4, batch_size: int = 16, **kwargs):
    """Trains `steps` steps of full batches (no partial batch, so a compiled step traces once)."""
    x, y = data
    n = steps * batch_size
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, shuffle=False, verbose=0, **kwargs)


def lottery_run(rounds: int = 3, loss=None, callbacks=(), **callback_kwargs):
    """`dense_model` at rate 0.5 trained `rounds` rounds of one epoch (4 steps) by the lottery
    callback, seeded; returns (model, ticket). `callbacks` run after the ticket's."""
    keras.utils.set_random_seed(0)
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0, **callback_kwargs)
    x, y = dense_data()
    model.fit(x, y, batch_size=16, epochs=rounds, shuffle=False, callbacks=[ticket, *callbacks], verbose=0)
    return model, ticket


def next_masks(model):
    """The masks one round of magnitude pruning gives `model` now (not set)."""
    weights = lth3.get_stored_weights(model)
    return magnitude_prune(
        weights, lth3.get_masks(model), lth3.layer_rates(model), lth3.pruning_groups(model)
    )


def prune_round(model):
    """Prunes `model` one round (`next_masks`, set); returns the masks."""
    masks = next_masks(model)
    lth3.set_masks(model, masks)
    return masks


def same_arrays(a, b) -> bool:
    """Whether two mappings of arrays have the same keys, in order, and the same bits in each."""
    return list(a) == list(b) and all(
        np.shape(a[key]) == np.shape(b[key]) and np.asarray(a[key]).tobytes() == np.asarray(b[key]).tobytes()
        for key in a
    )


class CountingLoss(keras.losses.Loss):
    """Cross-entropy that counts its calls: under TensorFlow and JAX, one per trace."""

    def __init__(self):
        super().__init__(name="counting")
        self.calls = 0

    def call(self, y_true, y_pred):
        self.calls += 1
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
