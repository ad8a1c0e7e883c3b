"""A lottery round as the experiment scripts train it, against naive `model.fit` of the dense model.

    python -m benchmarks.round_speed [--model=lenet] [--steps=1000] [--repeats=5]

"naive": the unwrapped model, compiled with Keras's defaults, `model.fit(x, y,
batch_size=60)` on NumPy arrays. "lottery": what `python -m experiments.<suite>` runs
by default: the lottery-wrapped model compiled by `experiments.components` (for LeNet:
XLA, one call per validation interval, the call's steps fused into one XLA program), the
resumable `training_stream` input pipeline and the lottery callback, Keras epochs of
`eval_every` steps; "lottery, unfused": the same with --nofused_steps. Each is timed from
its first epoch's start to its last epoch's end (`timing.timed_fit`): a real run trains
all its rounds in one `fit`, so `fit`'s own set-up and tear-down are left out of all.
All train the same number of steps on the same data, interleaved, in one process. The performance target wants
lottery / naive at or under 0.35 for LeNet-300-100.

Also printed, the share evaluation takes in the scripts' round: the same lottery round
with the paper's protocol (validation every 100 iterations, test metrics at each new
early-stop candidate), over the round without it; and the floor: the dense model with the
same compile settings and input stream, no wrappers and no callback ("dense, fast"); and
the cost of the callback's invariant checks: the lottery round with `check_invariants=False`
("lottery, unchecked").
"""

import dataclasses
import importlib

import numpy as np
from absl import app, flags

import lth_keras
from benchmarks import timing
from experiments import components
from lth_keras import pipelines
from lth_keras.paper import datasets, models

keras = lth_keras.keras

flags.DEFINE_string("model", "lenet", "A suite of experiments/ (its paper defaults are used).")
flags.DEFINE_integer("steps", 1000, "Training steps per measurement (a multiple of eval_every).")
flags.DEFINE_integer("repeats", 5, "Measurements per variant.")
FLAGS = flags.FLAGS

TARGET = 0.35
SHAPES = {"lenet": (28, 28, 1)}


def _data(config, steps, shape):
    rng = np.random.default_rng(0)
    examples = steps * config.batch_size
    x = rng.random((examples,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, size=examples)
    held_out = rng.random((config.validation_size,) + shape, dtype=np.float32)
    held_out_labels = rng.integers(0, 10, size=config.validation_size)
    return datasets.Splits(
        train=(x, y),
        validation=(held_out, held_out_labels),
        test=(held_out, held_out_labels),
        num_classes=10,
        input_shape=shape,
    )


def naive_round(config, splits):
    model = models.MODELS[config.model](input_shape=splits.input_shape, seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x, y = splits.train
    model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0)  # trace, warm up
    return lambda: timing.timed_fit(model, x, y=y, batch_size=config.batch_size, epochs=1)


def fast_dense_round(config, splits, steps):
    """The dense model with the scripts' compile settings and input stream: the floor."""
    model = models.MODELS[config.model](input_shape=splits.input_shape, seed=0)
    components.compile_model(model, config)
    stream = components.training_batches(config, splits, model)
    fit = dict(steps_per_epoch=config.eval_every, epochs=steps // config.eval_every)
    model.fit(stream, verbose=0, **fit)  # trace, warm up
    return lambda: timing.timed_fit(model, stream, **fit)


def lottery_round(config, splits, steps, evaluate: bool, check_invariants: bool = True):
    model = components.build_model(config, splits, seed=0)
    components.compile_model(model, config)
    epochs = steps // config.eval_every
    callback = lth_keras.LotteryTicketCallback(
        epochs_per_round=epochs, verbose=0, check_invariants=check_invariants
    )
    validation = test = None
    if evaluate:
        validation = pipelines.make_pipeline(*splits.validation, 1000, training=False)
        test = pipelines.make_pipeline(*splits.test, 1000, training=False)
        callback.test_data = test
    stream = components.training_batches(config, splits, model)
    fit = dict(steps_per_epoch=config.eval_every, validation_data=validation)
    model.fit(stream, epochs=epochs, callbacks=[callback], verbose=0, **fit)  # trace, warm up; round 0

    def run():
        # Each measurement is one whole round, with the boundary before it (prune, rewind).
        start = len(callback.rounds) * epochs
        return timing.timed_fit(model, stream, [callback], initial_epoch=start, epochs=start + epochs, **fit)

    return run


def main(argv):
    del argv
    config = importlib.import_module(f"experiments.{FLAGS.model}").DEFAULTS
    config = dataclasses.replace(config, iterations=FLAGS.steps)
    shape = SHAPES.get(config.model, models.CIFAR_SHAPE)
    splits = _data(config, FLAGS.steps, shape)
    samples = timing.interleaved(
        {
            "naive": naive_round(config, splits),
            "dense, fast": fast_dense_round(config, splits, FLAGS.steps),
            "lottery": lottery_round(config, splits, FLAGS.steps, evaluate=False),
            "lottery, unfused": lottery_round(
                dataclasses.replace(config, fused_steps=False), splits, FLAGS.steps, evaluate=False
            ),
            "lottery+eval": lottery_round(config, splits, FLAGS.steps, evaluate=True),
            "lottery, unchecked": lottery_round(
                config, splits, FLAGS.steps, evaluate=False, check_invariants=False
            ),
        },
        FLAGS.repeats,
    )
    per_step = 1000.0 / FLAGS.steps
    spe = config.steps_per_execution or config.eval_every
    speed = f"jit_compile={config.jit_compile}, steps_per_execution={spe}, fused_steps={config.fused_steps}"
    print(f"{config.model}, batch {config.batch_size}, {FLAGS.steps} steps per measurement ({speed}):")
    for name, values in samples.items():
        print(f"  {name:18s} {timing.summary(values, per_step)} ms per step")
    ratio = timing.paired_median_ratio(samples["lottery"], samples["naive"])
    print(
        f"  lottery/naive {timing.ratio(samples['lottery'], samples['naive'])}"
        f" {'≤' if ratio <= TARGET else '>'} {TARGET}"
    )
    print(f"  (dense, fast)/naive {timing.ratio(samples['dense, fast'], samples['naive'])}")
    print(f"  lottery/(dense, fast) {timing.ratio(samples['lottery'], samples['dense, fast'])}")
    print(f"  lottery/(lottery, unfused) {timing.ratio(samples['lottery'], samples['lottery, unfused'])}")
    print(
        "  invariant checks (masks at every epoch end, the boundary's): lottery/(lottery, unchecked) "
        f"{timing.ratio(samples['lottery'], samples['lottery, unchecked'])}"
    )
    print(
        "  with the paper's evaluation protocol: (lottery+eval)/lottery "
        f"{timing.ratio(samples['lottery+eval'], samples['lottery'])}"
    )


if __name__ == "__main__":
    app.run(main)
