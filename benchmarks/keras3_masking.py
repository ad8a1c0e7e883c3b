"""Keras 3 masking: a wrapper layer masking the forward pass against a variable constraint.

    KERAS_BACKEND=tensorflow .venv/bin/python -m benchmarks.keras3_masking [--steps=100] [--repeats=5]
    KERAS_BACKEND=jax .venv-jax/bin/python -m benchmarks.keras3_masking

For each model three variants train the same steps on the same cached batches, interleaved
in one process: the plain Keras 3 model ("unwrapped"); `lth_keras.keras3.prune_for_lottery`
("wrapper": LotteryMask runs the layer on weight * mask); and the same plain model with
each prunable kernel given a constraint `weight <- weight * mask` that the optimizer applies
after its update ("constraint", the tf_keras side's mechanism; here only, not in the
library). Prints ms per step, median (min-max) and the median paired ratio to unwrapped,
and whether the variant honours masks assigned after its train step was compiled: half of
each kernel's mask set to 0, a few more steps, are those weights exactly 0 in storage?
"""

import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import lth_keras.keras3 as lth3  # noqa: E402
from benchmarks import timing  # noqa: E402

flags.DEFINE_list("models", ["lenet", "conv"], "Models: lenet (784-300-100-10), conv (2 conv + 2 dense).")
flags.DEFINE_integer("steps", 100, "Timed training steps per measurement.")
flags.DEFINE_integer("repeats", 5, "Measurements per variant.")
flags.DEFINE_integer("batch_size", 60, "Batch size.")
flags.DEFINE_integer("steps_per_execution", 1, "Keras's steps_per_execution.")
FLAGS = flags.FLAGS

SHAPES = {"lenet": (784,), "conv": (28, 28, 1)}


def _model(name: str):
    layers = keras.layers
    if name == "lenet":
        body = [layers.Dense(300, activation="relu"), layers.Dense(100, activation="relu")]
    else:
        body = [
            layers.Conv2D(16, 3, activation="relu"),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
        ]
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(SHAPES[name]), *body, layers.Dense(10)], name=name)


class MaskConstraint(keras.constraints.Constraint):
    """weight <- weight * mask, applied by the optimizer after each update."""

    def __init__(self, mask):
        self.mask = mask

    def __call__(self, weight):
        return weight * self.mask


def _constrained(model):
    """A copy of `model` whose Dense and Conv kernels carry a MaskConstraint; (copy, masks)."""
    masks = {}

    def clone(layer):
        config = layer.get_config()
        if "kernel_constraint" in config:
            fresh = layer.__class__.from_config(config)
            mask = keras.Variable(np.ones(layer.kernel.shape, "float32"), trainable=False)
            fresh.kernel_constraint = MaskConstraint(mask)
            masks[layer.name] = mask
            return fresh
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy, masks


def _half_masks(shapes):
    rng = np.random.default_rng(0)
    return {key: (rng.random(shape) < 0.5).astype("float32") for key, shape in shapes.items()}


def _honours_constraint(model, masks, fit):
    half = _half_masks({name: mask.shape for name, mask in masks.items()})
    for name, mask in masks.items():
        mask.assign(half[name])
        kernel = model.get_layer(name).kernel
        kernel.assign(keras.ops.convert_to_numpy(kernel) * half[name])
    fit(5)
    kernels = {name: keras.ops.convert_to_numpy(model.get_layer(name).kernel) for name in masks}
    return all(np.all(kernels[name][half[name] == 0] == 0) for name in masks)


def _honours_wrapper(model, fit):
    half = _half_masks({key: weight.shape for key, (weight, _) in lth3.masked_variables(model).items()})
    lth3.set_masks(model, half)
    fit(5)
    return all(np.all(stored[half[key] == 0] == 0) for key, stored in lth3.get_stored_weights(model).items())


def _fitter(model, data):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=FLAGS.steps_per_execution,
    )
    x, y = data

    def fit(steps):
        n = steps * FLAGS.batch_size
        model.fit(x[:n], y[:n], batch_size=FLAGS.batch_size, epochs=1, shuffle=False, verbose=0)

    fit(FLAGS.steps)  # trace, compile, warm up
    return fit


def benchmark(name: str) -> None:
    rng = np.random.default_rng(0)
    n = FLAGS.steps * FLAGS.batch_size
    data = (rng.normal(size=(n, *SHAPES[name])).astype("float32"), rng.integers(0, 10, n).astype("int32"))
    plain = _model(name)
    wrapped = lth3.prune_for_lottery(plain)
    constrained, masks = _constrained(plain)
    fits = {"unwrapped": _fitter(plain, data), "wrapper": _fitter(wrapped, data)}
    fits["constraint"] = _fitter(constrained, data)
    runs = {
        variant: (lambda fit=fit: timing.timed(lambda: fit(FLAGS.steps))) for variant, fit in fits.items()
    }
    seconds = timing.interleaved(runs, FLAGS.repeats)
    honours = {
        "unwrapped": "-",
        "wrapper": "yes" if _honours_wrapper(wrapped, fits["wrapper"]) else "NO",
        "constraint": "yes" if _honours_constraint(constrained, masks, fits["constraint"]) else "NO",
    }
    per_step = 1000.0 / FLAGS.steps
    for variant, samples in seconds.items():
        ratio = timing.paired_median_ratio(samples, seconds["unwrapped"])
        cells = [name, variant, timing.summary(samples, per_step), f"{ratio:.3f}", honours[variant]]
        print("| " + " | ".join(cells) + " |", flush=True)


def main(argv):
    del argv
    print(
        f"Keras {keras.__version__}, backend {keras.backend.backend()}, batch {FLAGS.batch_size}, "
        f"{FLAGS.steps} steps x {FLAGS.repeats} repeats, steps_per_execution={FLAGS.steps_per_execution}"
    )
    print("| model | variant | ms/step median (min–max) | / unwrapped | honours new masks |")
    print("|---|---|---:|---:|---|")
    for name in FLAGS.models:
        benchmark(name)


if __name__ == "__main__":
    app.run(main)
