"""Runs survive interruption: a killed run, resumed, ends exactly where an uninterrupted one does."""

import dataclasses
import json
import os

import pytest

from experiments import config as config_lib
from experiments import layout, runner
from experiments.lenet import DEFAULTS as LENET
from tests.helpers.lenet_runs import assert_same_runs, kill_lenet, run_lenet, ticket_run_dir


@pytest.mark.parametrize(
    "when,count",
    [
        ("epoch", 7),  # round 1, one epoch after its last checkpoint: that epoch is redone
        ("epoch", 4),  # right after round 0 ended: round 1 starts from the round-end checkpoint
        ("checkpoint", 4),  # inside a checkpoint write: the previous checkpoint is used
    ],
    ids=["mid_round", "after_round_boundary", "during_checkpoint"],
)
def test_sigkilled_run_resumes_to_identical_results(lenet_reference, tmp_path, when, count):
    kill_lenet(tmp_path, when, count)
    run = ticket_run_dir(tmp_path)
    assert os.path.exists(layout.record_file(layout.round_dir(run, 0)))
    assert not os.path.exists(layout.record_file(layout.round_dir(run, 2)))
    result = run_lenet(tmp_path)
    assert "resuming" in result.stdout
    assert_same_runs(lenet_reference, tmp_path)


def test_raising_prune_iters_continues_from_the_last_finished_round(lenet_reference, tmp_path):
    run_lenet(tmp_path, "--prune_iters=1")
    run = ticket_run_dir(tmp_path)
    assert layout.round_indices(run) == [0, 1]
    result = run_lenet(tmp_path)  # --prune_iters=2 again
    assert "resuming" in result.stdout and "round 2:" in result.stdout and "round 0:" not in result.stdout
    assert_same_runs(lenet_reference, tmp_path)


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
