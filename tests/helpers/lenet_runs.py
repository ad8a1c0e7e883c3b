"""The small lenet run that the tests of resuming, interruptions, divergence and stored files share.

FLAGS make `python -m experiments.lenet` small: 4 Keras epochs (of 10 iterations) a round,
a checkpoint every 2 epochs, 3 rounds. SMALL_LENET is the same run as a config, for tests
that run it in-process. The fixture `lenet_reference` (tests/conftest.py) is one such run,
uninterrupted, for `assert_same_runs` to compare others with.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import tensorflow as tf

from experiments import layout
from experiments.branches import TICKET
from experiments.lenet import DEFAULTS as LENET
from tests.helpers import troubled_run
from tests.helpers.cli import ROOT, run_experiment

FLAGS = [
    "--dataset=synthetic",
    "--iterations=40",
    "--eval_every=10",
    "--checkpoint_every=20",
    "--batch_size=16",
    "--prune_iters=2",
    "--deterministic",
]

# FLAGS as a config, for tests that run in-process (without --deterministic, which would
# switch op determinism on for the whole test process).
SMALL_LENET = dataclasses.replace(
    LENET, dataset="synthetic", iterations=40, eval_every=10, checkpoint_every=20, batch_size=16
)
# Two rounds of it (the fixture `two_rounds` is one, finished).
TWO_ROUNDS = dataclasses.replace(SMALL_LENET, prune_iters=1)


def experiment_dir(output_dir, **settings) -> str:
    """The experiment directory that a run with FLAGS and --output_dir=output_dir writes;
    `settings` are the config fields of any extra flags (e.g. dropout=0.5 for --dropout=0.5)."""
    config = dataclasses.replace(
        SMALL_LENET, prune_iters=2, deterministic=True, output_dir=str(output_dir), **settings
    )
    return layout.experiment_dir(config)


def ticket_run_dir(output_dir, **settings) -> str:
    """That experiment's run of the ticket itself (no control), replicate 0."""
    return layout.run_dir(experiment_dir(output_dir, **settings), TICKET.name, 0)


def run_lenet(output_dir, *extra_flags: str) -> subprocess.CompletedProcess:
    """Runs the suite with FLAGS (then `extra_flags`) into output_dir; it must succeed."""
    result = run_experiment("lenet", *FLAGS, f"--output_dir={output_dir}", *extra_flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def start_troubled_lenet(output_dir, mode: str, value, wait: bool = True) -> subprocess.Popen:
    """The same run under tests/helpers/troubled_run.py (see `troubled_run.start`)."""
    return troubled_run.start(mode, value, "lenet", *FLAGS, f"--output_dir={output_dir}", wait=wait)


def kill_lenet(output_dir, when: str, count: int, *extra_flags: str) -> None:
    """The same run under tests/helpers/interrupted_run.py, SIGKILLed at `when` number `count`."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.helpers.interrupted_run", when, str(count), "lenet", *FLAGS]
        + [f"--output_dir={output_dir}", *extra_flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


def final_weights(run: str) -> dict:
    """The model's variables (not the optimizer's) in the checkpoint of the run's last round."""
    last = layout.round_indices(run)[-1]
    reader = tf.train.load_checkpoint(layout.checkpoint_dir(layout.round_dir(run, last)))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/") and "OPTIMIZER" not in n]
    return {n: reader.get_tensor(n) for n in names}


def assert_same_runs(reference_dir, resumed_dir, **settings) -> None:
    """Both output dirs hold the same three rounds: metrics, masks and final weights, exactly.
    `settings`: as for `experiment_dir`."""
    reference, resumed = ticket_run_dir(reference_dir, **settings), ticket_run_dir(resumed_dir, **settings)
    assert layout.round_indices(reference) == layout.round_indices(resumed) == [0, 1, 2]
    for index in (0, 1, 2):
        a, b = layout.round_dir(reference, index), layout.round_dir(resumed, index)
        record_a, record_b = json.load(open(layout.record_file(a))), json.load(open(layout.record_file(b)))
        assert record_a == record_b, f"round {index}'s records differ"
        masks_a, masks_b = np.load(os.path.join(a, "masks.npz")), np.load(os.path.join(b, "masks.npz"))
        for key in masks_a.files:
            np.testing.assert_array_equal(masks_a[key], masks_b[key])
    weights_a, weights_b = final_weights(reference), final_weights(resumed)
    assert weights_a and weights_a.keys() == weights_b.keys()
    for name in weights_a:
        np.testing.assert_array_equal(weights_a[name], weights_b[name], err_msg=name)
