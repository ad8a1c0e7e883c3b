"""Tiny models, generated data and fixtures shared by the tests."""

import gzip
import os
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lth_keras  # noqa: E402
from lth_keras.model_state import optimizer_variables  # noqa: E402

keras = lth_keras.keras


def dense_model(seed: int = 0, batch_norm: bool = True):
    """20 -> 16 -> (BN) -> 12 -> 4: three prunable kernels, biases and batch-norm."""
    init = lambda i: keras.initializers.GlorotNormal(seed=seed + i)  # noqa: E731
    inputs = keras.Input((20,), name="x")
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=init(0), name="fc1")(inputs)
    if batch_norm:
        h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dense(12, activation="relu", kernel_initializer=init(1), name="fc2")(h)
    outputs = keras.layers.Dense(4, kernel_initializer=init(2), name="out")(h)
    return keras.Model(inputs, outputs, name="tiny_dense")


def conv_model(seed: int = 0):
    """A small conv net: two convolutions, a dense layer and the output."""
    init = lambda i: keras.initializers.GlorotNormal(seed=seed + i)  # noqa: E731
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init(0), name="conv1"),
            keras.layers.Conv2D(6, 3, activation="relu", kernel_initializer=init(1), name="conv2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="relu", kernel_initializer=init(2), name="fc"),
            keras.layers.Dense(3, kernel_initializer=init(3), name="out"),
        ],
        name="tiny_conv",
    )


def dense_data(n: int = 256, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype(np.float32)
    y = (x[:, :4].argmax(axis=1)).astype(np.int64)
    return x, y


def conv_data(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
    y = (x.reshape(n, -1)[:, :3].argmax(axis=1)).astype(np.int64)
    return x, y


def write_idx(path, array):
    """One IDX file (gzipped if `path` ends in .gz) holding a uint8 `array`."""
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    data = header + array.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def write_dataset(directory, n_train=120, n_test=40, gz=True, seed=0):
    """Four IDX files shaped like (Fashion-)MNIST, with learnable labels."""
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        images[np.arange(n), labels, :] = 255  # the label's row lights up
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return directory


def compile_model(model, optimizer=None, **kwargs):
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def expected_remaining(size: int, rate: float, rounds: int) -> int:
    """Weights a layer keeps after `rounds` prunings at `rate`, rounding each round."""
    remaining = size
    for _ in range(rounds):
        remaining -= lth_keras.masks.count_to_prune(remaining, rate)
    return remaining


class StateProbe(keras.callbacks.Callback):
    """Placed after the lottery callback: records what the model looks like when."""

    def __init__(self):
        super().__init__()
        self.theta_0 = None
        self.epoch_begin = []  # per epoch: (masks, snapshot, optimizer slots, iterations)
        self.batch_checks = []  # per batch: (masks, stored weight variables' values) of pruned weights
        self.weights_at_step = {}

    def on_train_begin(self, logs=None):
        if self.theta_0 is None:
            self.theta_0 = lth_keras.take_snapshot(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        slots = [v.numpy() for v in optimizer_variables(optimizer) if v is not optimizer.iterations]
        self.epoch_begin.append(
            (
                dict(lth_keras.get_masks(self.model)),
                dict(lth_keras.take_snapshot(self.model)),
                slots,
                int(optimizer.iterations.numpy()),
            )
        )

    def on_train_batch_end(self, batch, logs=None):
        masks = lth_keras.get_masks(self.model)
        stored = lth_keras.model_state.get_stored_weights(self.model)
        self.batch_checks.append((dict(masks), stored))
        step = int(self.model.optimizer.iterations.numpy())
        self.weights_at_step.setdefault(step, dict(lth_keras.take_snapshot(self.model)))


@pytest.fixture(scope="session")
def lenet_reference(tmp_path_factory):
    """The output dir of one uninterrupted run of tests/helpers/lenet_runs.py's small lenet,
    for `lenet_runs.assert_same_runs` to compare resumed runs with. Tests only read it."""
    from tests.helpers import lenet_runs  # imports experiments: only when a test asks for this

    directory = tmp_path_factory.mktemp("lenet_reference")
    lenet_runs.run_lenet(directory)
    return directory


@pytest.fixture(scope="session")
def two_rounds(tmp_path_factory):
    """The output dir of a finished two-round ticket (tests/helpers/lenet_runs.TWO_ROUNDS,
    run in-process); round 1 keeps checkpoints 6 and 8. Tests copy it before changing it."""
    import dataclasses

    from experiments import runner  # imports experiments: only when a test asks for this
    from tests.helpers import lenet_runs

    directory = tmp_path_factory.mktemp("two_rounds") / "runs"
    runner.train_and_evaluate(dataclasses.replace(lenet_runs.TWO_ROUNDS, output_dir=str(directory)))
    return directory


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
