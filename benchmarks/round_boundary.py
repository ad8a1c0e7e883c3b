"""Cost of the work between rounds, and whether it stays constant round after round.

    python -m benchmarks.round_boundary [--models=lenet,conv6] [--rounds=20] [--rewind_step=0]

For each suite: trains a few steps per round for `--rounds` rounds with the lottery
callback and measures, at every round boundary, the time of the boundary work (prune by
magnitude, set masks, rewind, reset the optimizer, check the invariants) and of saving
the round's state (mask file and a checkpoint), the process's resident memory, and how
often Keras traced its train function. A paper-length round's time is estimated as the
measured per-step time times the suite's iterations per round, in the same run, and the
boundary's share of it printed. The model is built with the suite's pruning rates and
compiled as the experiment scripts compile it (the suite's XLA setting, one call per
round of `--steps_per_round`), and the callback keeps θ₀ as they do (dropped once θ_k
exists).
Also prints the memory θ₀/θ_k and masks take next to the model's weights.
"""

import dataclasses
import importlib
import math
import os
import resource
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import lth_keras
from benchmarks import timing
from experiments import components
from lth_keras.paper import datasets, models


flags.DEFINE_list("models", ["lenet", "conv6"], "Suites of experiments/ (their paper settings are used).")
flags.DEFINE_integer("rounds", 20, "Rounds to run (each a few steps).")
flags.DEFINE_integer("steps_per_round", 20, "Training steps per round.")
flags.DEFINE_integer("rewind_step", 0, "0 rewinds to θ₀; k (< steps_per_round) to θ_k.")
FLAGS = flags.FLAGS

SHAPES = {"lenet": (28, 28, 1)}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class BoundaryProbe(lth_keras.LotteryTicketCallback):
    """Times `_start_next_round` and a save of the round's state; records memory and traces."""

    def __init__(self, directory, **kwargs):
        super().__init__(**kwargs)
        self.directory = directory
        self.boundary_seconds, self.save_seconds, self.rss_mb, self.traces = [], [], [], []
        self.boundary_cpu_seconds = []  # the process's CPU time: unaffected by a throttled machine
        self.round_end_times = []

    def _start_next_round(self):
        cpu = time.process_time()
        self.boundary_seconds.append(timing.timed(super()._start_next_round))
        self.boundary_cpu_seconds.append(time.process_time() - cpu)

    def on_round_end(self, record):
        def save():
            lth_keras.get_masks(self.model).save(self.directory)
            tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer).write(
                os.path.join(self.directory, "checkpoint")
            )

        self.round_end_times.append(time.perf_counter())
        self.save_seconds.append(timing.timed(save))
        self.rss_mb.append(_rss_mb())
        self.traces.append(self.model.train_function.experimental_get_tracing_count())


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    for name in FLAGS.models:
        suite = importlib.import_module(f"experiments.{name}").DEFAULTS
        shape = SHAPES.get(name, models.CIFAR_SHAPE)
        rng = np.random.default_rng(0)
        x = rng.random((suite.batch_size * 20,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, size=len(x))
        xy = (x, y)
        splits = datasets.Splits(train=xy, validation=xy, test=xy, num_classes=10, input_shape=shape)
        model = components.build_model(suite, splits, seed=0)
        per_execution = math.gcd(FLAGS.rewind_step, FLAGS.steps_per_round)
        config = dataclasses.replace(suite, steps_per_execution=per_execution)
        components.compile_model(model, config)
        with tempfile.TemporaryDirectory() as directory:
            probe = BoundaryProbe(
                directory,
                steps_per_round=FLAGS.steps_per_round,
                rewind_step=FLAGS.rewind_step,
                keep_theta_0=False,
                verbose=0,
            )
            stream = components.training_batches(config, splits, model)
            model.fit(
                stream,
                steps_per_epoch=FLAGS.steps_per_round * FLAGS.rounds,
                epochs=1,
                callbacks=[probe],
                verbose=0,
            )
        # Training time of rounds 2..N: time between round ends less the boundary work and saving.
        gaps = (
            np.diff(probe.round_end_times)[1:]
            - np.array(probe.boundary_seconds[1:])
            - probe.save_seconds[1:-1]
        )
        step_seconds = float(np.median(gaps)) / FLAGS.steps_per_round
        paper_round = step_seconds * suite.iterations
        boundary = np.median(probe.boundary_seconds)
        save = np.median(probe.save_seconds)
        print(
            f"{name}: per step {1000 * step_seconds:.2f} ms (median over rounds 2..N); "
            f"paper round ≈ {paper_round:.0f} s"
        )
        print(
            f"  boundary work: median {1000 * boundary:.1f} ms, first"
            f" {1000 * probe.boundary_seconds[0]:.1f} ms, last {1000 * probe.boundary_seconds[-1]:.1f} ms;"
            f" saving: median {1000 * save:.1f} ms"
        )
        print(f"  boundary ms per round: {[round(1000 * b) for b in probe.boundary_seconds]}")
        print(f"  boundary CPU ms per round: {[round(1000 * b) for b in probe.boundary_cpu_seconds]}")
        print(f"  resident MB after each round: {[round(m) for m in probe.rss_mb]}")
        print(f"  share of a paper-length round: {100 * (boundary + save) / paper_round:.3f}%")
        print(
            f"  resident memory after round 1: {probe.rss_mb[1]:.0f} MB, after round {len(probe.rss_mb)}: "
            f"{probe.rss_mb[-1]:.0f} MB; train-function traces after each round: {sorted(set(probe.traces))}"
        )
        weights = sum(v.numpy().nbytes for v in lth_keras.model_state.snapshot_variables(model).values())
        masks = sum(m.nbytes for m in lth_keras.get_masks(model).values())
        kept = sum(s.nbytes for s in (probe.theta_0, probe.theta_k) if s is not None)
        print(
            f"  memory: weights {weights / 2**20:.1f} MB; θ₀/θ_k {kept / 2**20:.1f} MB + masks "
            f"{masks / 2**20:.1f} MB = {(kept + masks) / weights:.2f}× the weights"
        )


if __name__ == "__main__":
    app.run(main)
