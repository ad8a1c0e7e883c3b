"""Runs survive interruption: a killed run, resumed, ends exactly where an uninterrupted one does."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from experiments import config as config_lib
from experiments import layout, runner
from experiments.lenet import DEFAULTS as LENET
from tests.helpers.cli import ROOT, run_experiment

# 4 Keras epochs (of 10 iterations) a round, a checkpoint every 2 epochs; 3 rounds.
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


def _experiment(output_dir):
    config = dataclasses.replace(SMALL_LENET, prune_iters=2, deterministic=True, output_dir=str(output_dir))
    return layout.experiment_dir(config)


def _run(output_dir, *extra):
    result = run_experiment("lenet", *FLAGS, f"--output_dir={output_dir}", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _killed(output_dir, when, count):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.helpers.interrupted_run",
            when,
            str(count),
            "lenet",
            *FLAGS,
            f"--output_dir={output_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


def _final_weights(run):
    last = layout.round_indices(run)[-1]
    reader = tf.train.load_checkpoint(layout.checkpoint_dir(layout.round_dir(run, last)))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model/") and "OPTIMIZER" not in n]
    return {n: reader.get_tensor(n) for n in names}


def _assert_same_runs(reference_dir, resumed_dir):
    reference = layout.run_dir(_experiment(reference_dir), "none", 0)
    resumed = layout.run_dir(_experiment(resumed_dir), "none", 0)
    assert layout.round_indices(reference) == layout.round_indices(resumed) == [0, 1, 2]
    for index in (0, 1, 2):
        a, b = layout.round_dir(reference, index), layout.round_dir(resumed, index)
        assert json.load(open(layout.metrics_file(a))) == json.load(open(layout.metrics_file(b)))
        masks_a, masks_b = np.load(os.path.join(a, "masks.npz")), np.load(os.path.join(b, "masks.npz"))
        for key in masks_a.files:
            np.testing.assert_array_equal(masks_a[key], masks_b[key])
    weights_a, weights_b = _final_weights(reference), _final_weights(resumed)
    assert weights_a and weights_a.keys() == weights_b.keys()
    for name in weights_a:
        np.testing.assert_array_equal(weights_a[name], weights_b[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    _run(directory)
    return directory


@pytest.mark.parametrize(
    "when,count",
    [
        ("epoch", 7),  # round 1, one epoch after its last checkpoint: that epoch is redone
        ("epoch", 4),  # right after round 0 ended: round 1 starts from the round-end checkpoint
        ("checkpoint", 4),  # inside a checkpoint write: the previous checkpoint is used
    ],
    ids=["mid_round", "after_round_boundary", "during_checkpoint"],
)
def test_sigkilled_run_resumes_to_identical_results(reference, tmp_path, when, count):
    _killed(tmp_path, when, count)
    run = layout.run_dir(_experiment(tmp_path), "none", 0)
    assert os.path.exists(layout.metrics_file(layout.round_dir(run, 0)))
    assert not os.path.exists(layout.metrics_file(layout.round_dir(run, 2)))
    result = _run(tmp_path)
    assert "resuming" in result.stdout
    _assert_same_runs(reference, tmp_path)


def test_raising_prune_iters_continues_from_the_last_finished_round(reference, tmp_path):
    _run(tmp_path, "--prune_iters=1")
    run = layout.run_dir(_experiment(tmp_path), "none", 0)
    assert layout.round_indices(run) == [0, 1]
    result = _run(tmp_path)  # --prune_iters=2 again
    assert "resuming" in result.stdout and "round 2:" in result.stdout and "round 0:" not in result.stdout
    _assert_same_runs(reference, tmp_path)


def test_experiment_names_are_stable():
    # Pinned: changing these orphans every stored run. Add fields with defaults instead.
    assert config_lib.config_hash(config_lib.ExperimentConfig()) == PINNED["default"]
    assert layout.experiment_name(LENET) == PINNED["lenet"]
    smoke_conv6 = dataclasses.replace(runner.resolve(dataclasses.replace(LENET, smoke=True)), model="conv6")
    assert layout.experiment_name(smoke_conv6) == PINNED["conv6_smoke"]
    # Settings that do not change results do not change the name.
    same = dataclasses.replace(
        LENET, prune_iters=3, replicates=5, output_dir="elsewhere", strategy="mirrored"
    )
    assert layout.experiment_name(same) == layout.experiment_name(LENET)
    assert layout.experiment_name(dataclasses.replace(LENET, learning_rate=1e-3)) != layout.experiment_name(
        LENET
    )


PINNED = {"default": "44136fa355", "lenet": "lenet_mnist-6351e66dcf", "conv6_smoke": "conv6_mnist-663230d80e"}


def test_a_stored_experiment_with_other_settings_is_refused_and_overwrite_replaces_it(tmp_path):
    config = dataclasses.replace(
        LENET, dataset="synthetic", smoke=True, prune_iters=1, output_dir=str(tmp_path)
    )
    runner.train_and_evaluate(config)
    experiment = layout.experiment_dir(runner.resolve(config))
    stored = json.load(open(layout.config_file(experiment)))
    stored["learning_rate"] = 0.5
    json.dump(stored, open(layout.config_file(experiment), "w"))
    with pytest.raises(ValueError, match="learning_rate"):
        runner.train_and_evaluate(config)
    rounds = runner.train_and_evaluate(dataclasses.replace(config, overwrite=True))[0]
    assert [r["round"] for r in rounds] == [0, 1]
    assert json.load(open(layout.config_file(experiment)))["learning_rate"] == LENET.learning_rate
