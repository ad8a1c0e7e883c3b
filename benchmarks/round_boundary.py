"""Cost of the work between rounds, and whether it stays constant round after round.

    python -m benchmarks.round_boundary [--models=lenet,conv6] [--rounds=20] [--rewind_step=0]

For each model: trains a few steps per round for `--rounds` rounds with the lottery
callback and measures, at every round boundary, the time of the boundary work (prune by
magnitude, set masks, rewind, reset the optimizer, check the invariants) and of saving the round's state (mask
file and a checkpoint), the process's resident memory, and how often Keras traced its
train function. A paper-length round's time is estimated as the measured per-step time
times the paper's iterations, in the same run, and the boundary's share of it printed.
The model is compiled as the experiment scripts compile it (XLA, one call per round of
`--steps_per_round`), and the callback keeps θ₀ as they do (dropped once θ_k exists).
Also prints the memory θ₀/θ_k and masks take next to the model's weights.
"""

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
from lth_keras import datasets, models

keras = lth_keras.keras

flags.DEFINE_list("models", ["lenet", "conv6"], "Models from lth_keras.models.MODELS.")
flags.DEFINE_integer("rounds", 20, "Rounds to run (each a few steps).")
flags.DEFINE_integer("steps_per_round", 20, "Training steps per round.")
flags.DEFINE_integer("rewind_step", 0, "0 rewinds to θ₀; k (< steps_per_round) to θ_k.")
flags.DEFINE_bool("jit_compile", True, "Compile with XLA, as the experiment scripts do.")
FLAGS = flags.FLAGS

PAPER_ITERATIONS = {"lenet": 50000, "conv6": 30000, "conv2": 20000, "conv4": 25000}
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
        self.round_end_times = []

    def _start_next_round(self):
        self.boundary_seconds.append(timing.timed(super()._start_next_round))

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
        shape = SHAPES.get(name, models.CIFAR_SHAPE)
        rng = np.random.default_rng(0)
        x = rng.random((60 * 20,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, size=len(x))
        model = lth_keras.prune_for_lottery(models.MODELS[name](input_shape=shape), pruning_rate=0.2)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=FLAGS.jit_compile,
            steps_per_execution=math.gcd(FLAGS.rewind_step, FLAGS.steps_per_round),
        )
        with tempfile.TemporaryDirectory() as directory:
            probe = BoundaryProbe(
                directory,
                steps_per_round=FLAGS.steps_per_round,
                rewind_step=FLAGS.rewind_step,
                keep_theta_0=False,
                verbose=0,
            )
            stream = datasets.training_stream(x, y, 60)
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
        paper_round = step_seconds * PAPER_ITERATIONS.get(name, 30000)
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
