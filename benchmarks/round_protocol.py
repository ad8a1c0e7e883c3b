"""A whole paper-protocol round, as the experiment scripts run it, against its training steps alone.

    python -m benchmarks.round_protocol [--model=lenet] [--iterations=3000] [--repeats=5]

"protocol": one round of a ticket's run as `python -m experiments.<suite>` trains it: the
suite's paper settings and the scripts' compile settings, validation on 5,000 examples
every `eval_every` (100) iterations, test metrics for the round's end and its early-stop
step, a checkpoint every `checkpoint_every` (1,000) iterations and at the round's end, the
round's ticket files, manifest and TensorBoard, and the boundary before the round (prune,
rewind, reset, invariant checks). "steps alone": the same lottery-wrapped model, compiled
the same way, trained on the same input stream for the same number of steps in one epoch,
with no callback. Both are timed from their first epoch's start to their last epoch's end
(`timing.timed_fit`), one round a measurement, interleaved in one process; the first round
of each (tracing, compiling) is not measured. The goal: protocol / steps alone at or under
1.3 for LeNet-300-100.

The breakdown says where the protocol round's time went, as measured inside it: the
training calls, validation, test evaluation, checkpoints, the boundary, the round's files
and TensorBoard at its end, and the rest (Keras's loop between calls and the callback's
per-interval work).
"""

import collections
import dataclasses
import functools
import importlib
import statistics
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks import timing
from experiments import branches, components
from lth_keras import pipelines
from lth_keras.paper import datasets, models

flags.DEFINE_string("model", "lenet", "A suite of experiments/ (its paper defaults are used).")
flags.DEFINE_integer("iterations", 3000, "Iterations per round (a multiple of eval_every).")
flags.DEFINE_integer("repeats", 5, "Rounds measured per variant.")
flags.DEFINE_string(
    "dataset",
    "fashion_mnist",
    "A dataset the suite can read offline (e.g. Debian's fashion_mnist), or 'generated': random "
    "inputs of the suite's shape and random labels (fewer new early-stop candidates than real data).",
)
FLAGS = flags.FLAGS

GOAL = 1.3
SHAPES = {"lenet": (28, 28, 1)}
EXAMPLES = {"train": 55000, "validation": 5000, "test": 10000}  # generated: as many as MNIST has
PARTS = ("training", "validation", "test", "checkpoints", "boundary", "round's files and TensorBoard")


def _data(config) -> datasets.Splits:
    if FLAGS.dataset != "generated":
        return datasets.load_dataset(FLAGS.dataset, validation_size=config.validation_size)
    shape = SHAPES.get(config.model, models.CIFAR_SHAPE)
    rng = np.random.default_rng(0)

    def split(n):
        return rng.random((n,) + shape, dtype=np.float32), rng.integers(0, 10, size=n)

    return datasets.Splits(
        train=split(EXAMPLES["train"]),
        validation=split(EXAMPLES["validation"]),
        test=split(EXAMPLES["test"]),
        num_classes=10,
        input_shape=shape,
    )


def _model(config, splits):
    model = components.build_model(config, splits, seed=0)
    components.compile_model(model, config)
    return model


def steps_alone(config, splits):
    model = _model(config, splits)
    stream = components.training_batches(config, splits, model)
    fit = dict(steps_per_epoch=config.iterations, epochs=1)
    model.fit(stream, verbose=0, **fit)  # trace, warm up
    return lambda: timing.timed_fit(model, stream, **fit)


class Stopwatch:
    """Seconds spent in chosen methods of chosen objects, by part (wrapped in place)."""

    def __init__(self):
        self.seconds = collections.Counter()

    def wrap(self, owner, name: str, part) -> None:
        """Times `owner.name`; `part` names it, or is a function of the call's arguments."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                label = part(*args, **kwargs) if callable(part) else part
                self.seconds[label] += time.perf_counter() - start

        setattr(owner, name, timed)


def protocol_round(config, splits, breakdown: list):
    """One ticket round a measurement, as the scripts train it; appends each round's
    breakdown (part -> seconds) to `breakdown`."""
    model = _model(config, splits)
    rounds = 1 + 1 + FLAGS.repeats  # the warm-up round, and one more so that none is the last
    callback = branches._round_logger(
        branches.TICKET,
        config,
        splits,
        {"write": tempfile.mkdtemp(prefix="round_protocol_")},
        rounds,
        replicate=0,
        rewind_step=config.rewind_step,
        one_shot=False,
        keep_theta_0=False,
    )
    watch = Stopwatch()
    watch.wrap(
        callback, "_evaluate", lambda data=None, prefix="val_": "test" if prefix == "test_" else "validation"
    )
    watch.wrap(callback, "_checkpoint", "checkpoints")
    watch.wrap(callback, "_start_next_round", "boundary")
    for name in ("_save_round_ticket", "_drop_old_checkpoints", "_write_tensorboard"):
        watch.wrap(callback, name, "round's files and TensorBoard")
    stream = components.training_batches(config, splits, model)
    intervals = config.iterations // config.eval_every
    fit = dict(steps_per_epoch=config.eval_every)
    if callback.validation_data is None:  # trees before the callback validated: fit did, per interval
        fit["validation_data"] = pipelines.make_pipeline(*splits.validation, 1000, training=False)
    model.fit(stream, epochs=intervals, callbacks=[callback], verbose=0, **fit)  # trace, warm up; round 0
    watch.wrap(model, "train_function", "training")

    def run():
        watch.seconds.clear()
        start = len(callback.rounds) * intervals
        seconds = timing.timed_fit(
            model, stream, [callback], initial_epoch=start, epochs=start + intervals, **fit
        )
        breakdown.append({**watch.seconds, "total": seconds})
        return seconds

    return run


def main(argv):
    del argv
    config = importlib.import_module(f"experiments.{FLAGS.model}").DEFAULTS
    config = dataclasses.replace(config, iterations=FLAGS.iterations)
    splits = _data(config)
    breakdown = []
    samples = timing.interleaved(
        {"steps alone": steps_alone(config, splits), "protocol": protocol_round(config, splits, breakdown)},
        FLAGS.repeats,
    )
    spe = config.steps_per_execution or config.eval_every
    speed = f"jit_compile={config.jit_compile}, steps_per_execution={spe}, fused_steps={config.fused_steps}"
    print(
        f"{config.model} on {FLAGS.dataset}, batch {config.batch_size}, {config.iterations} iterations a "
        f"round, validation every {config.eval_every} on {len(splits.validation[0]):,}, test on "
        f"{len(splits.test[0]):,}, "
        f"checkpoint every {config.checkpoint_every} ({speed}); {FLAGS.repeats} rounds each:"
    )
    for name, values in samples.items():
        print(f"  {name:12s} {timing.summary(values)} s a round")
    ratio = timing.paired_median_ratio(samples["protocol"], samples["steps alone"])
    verdict = "≤" if ratio <= GOAL else ">"
    measured = timing.ratio(samples["protocol"], samples["steps alone"])
    print(f"  protocol/(steps alone) {measured} {verdict} {GOAL}")
    print("  where a protocol round's time went (median over rounds, s, and share of the round):")
    total = statistics.median(b["total"] for b in breakdown)
    for part in PARTS + ("rest",):
        values = [
            b.get(part, 0.0) if part != "rest" else b["total"] - sum(b.get(p, 0.0) for p in PARTS)
            for b in breakdown
        ]
        seconds = statistics.median(values)
        print(f"    {part:32s} {seconds:7.3f}  {100 * seconds / total:5.1f}%")


if __name__ == "__main__":
    app.run(main)
