"""A damaged, missing or foreign stored file stops a run with an error naming it, before
anything is written; one the run holds another good copy of is rebuilt."""

import dataclasses
import os
import shutil

import numpy as np
import pytest

from experiments import layout, progress, runner
from experiments.branches import TICKET
from lth_keras import storage
from tests.helpers.cli import run_experiment
from tests.helpers.files import copy_tree, garbage, rerecord, tree_state, truncate
from tests.helpers.lenet_runs import TWO_ROUNDS as CONFIG


@pytest.fixture
def finished(two_rounds):
    return two_rounds


def _copy(finished, tmp_path):
    """A copy of the finished experiment; returns (output dir, ticket run dir)."""
    output_dir = copy_tree(finished, tmp_path / "runs")
    experiment = layout.experiment_dir(dataclasses.replace(CONFIG, output_dir=output_dir))
    return output_dir, layout.run_dir(experiment, TICKET.name, 0)


def _foreign_snapshot(path):
    """θ₀ of a different model (one weight of another shape), recorded as if written so."""
    arrays = storage.load_arrays(path)
    key = sorted(arrays)[0]
    arrays[key] = np.zeros(arrays[key].shape[:-1] + (3,), arrays[key].dtype)
    storage.save_arrays(path, arrays)
    rerecord(path)


def _foreign_masks(path):
    arrays = storage.load_arrays(path)
    key = sorted(arrays)[0]
    arrays[key] = np.ones((7, 7), np.float32)
    storage.save_arrays(path, arrays)
    rerecord(path)


def _other_round(path):
    """round 0's rounds.json replaced by round 1's, recorded as if written so."""
    shutil.copyfile(path.replace("round_0", "round_1"), path)
    rerecord(path)


def _checkpoint(run, name):
    return os.path.join(layout.checkpoint_dir(layout.round_dir(run, 1)), name)


REDO_ROUND_1 = "delete {run}/round_1 and any later round_* directories"
REDO_ROUND_0 = "delete {run}/round_0 and any later round_* directories"
START_ANEW = "re-run with --overwrite to start anew"
DAMAGED = "damaged: "
NO_COPY = "there is no other copy of it. To go on: "

# (file, damage, what the error says, what it advises); `run` is the ticket's replicate directory.
TICKET_CASES = {
    "truncated_checkpoint": (
        lambda run: _checkpoint(run, "ckpt-8.data-00000-of-00001"),
        truncate,
        DAMAGED,
        REDO_ROUND_1,
    ),
    "missing_checkpoint": (lambda run: _checkpoint(run, "ckpt-8.index"), os.remove, "missing", REDO_ROUND_1),
    # TensorFlow's pointer to the newest checkpoint is rewritten by each save: not recorded, read
    "corrupt_checkpoint_index": (
        lambda run: _checkpoint(run, "checkpoint"),
        garbage,
        "unreadable",
        REDO_ROUND_1,
    ),
    "corrupt_state": (lambda run: _checkpoint(run, "state-8.json"), garbage, DAMAGED, REDO_ROUND_1),
    # θ₀ is one file linked into each round: damage in place reaches every link
    "truncated_theta_0": (lambda run: layout.theta_file(run, "theta_0"), truncate, DAMAGED, START_ANEW),
    "foreign_theta_0": (
        lambda run: layout.theta_file(run, "theta_0"),
        _foreign_snapshot,
        "do not fit this model",
        START_ANEW,
    ),
    "foreign_record": (
        lambda run: layout.record_file(layout.round_dir(run, 0)),
        _other_round,
        "not end with the record of round 0",
        REDO_ROUND_0,
    ),
    "corrupt_config": (
        lambda run: layout.config_file(os.path.dirname(os.path.dirname(run))),
        garbage,
        "not valid JSON",
        START_ANEW,
    ),
}

CONTROL_CASES = {
    "truncated_masks": (truncate, DAMAGED, "it can be rebuilt from"),
    "missing_masks": (os.remove, "missing", "it can be rebuilt from"),
    "foreign_masks": (_foreign_masks, "7, 7", REDO_ROUND_1),
}


def _check_refused(config, path, says, advice, run):
    """Runs `config`; checks the error names the file and that nothing at all was written."""
    before = tree_state(config.output_dir)
    with pytest.raises(progress.RunFileError) as error:
        runner.train_and_evaluate(config)
    message = str(error.value)
    line = next((line for line in message.splitlines() if line.startswith(f"cannot use {path}: ")), None)
    assert line is not None, message
    assert says in line and advice.format(run=run) in line
    assert tree_state(config.output_dir) == before


@pytest.mark.parametrize("case", sorted(TICKET_CASES))
def test_a_resumed_ticket_refuses_a_bad_file(finished, tmp_path, case):
    file_of, damage, says, advice = TICKET_CASES[case]
    output_dir, run = _copy(finished, tmp_path)
    path = file_of(run)
    damage(path)
    config = dataclasses.replace(CONFIG, prune_iters=2, output_dir=output_dir)
    _check_refused(config, path, says, advice, run)


@pytest.mark.parametrize("case", sorted(CONTROL_CASES))
def test_a_control_refuses_bad_ticket_masks(finished, tmp_path, case):
    damage, says, advice = CONTROL_CASES[case]
    output_dir, run = _copy(finished, tmp_path)
    path = layout.masks_file(layout.round_dir(run, 1))
    damage(path)
    config = dataclasses.replace(CONFIG, control="random_prune", output_dir=output_dir)
    _check_refused(config, path, says, advice, run)


def test_the_script_exits_with_code_2_and_names_the_file(finished, tmp_path):
    output_dir, run = _copy(finished, tmp_path)
    path = _checkpoint(run, "state-8.json")
    garbage(path)
    before = tree_state(output_dir)
    flags = ["--dataset=synthetic", "--iterations=40", "--eval_every=10", "--checkpoint_every=20"]
    result = run_experiment(
        "lenet", *flags, "--batch_size=16", "--prune_iters=2", f"--output_dir={output_dir}"
    )
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: cannot use {path}: {DAMAGED}")
    assert last_line.endswith(f"{NO_COPY}{REDO_ROUND_1.format(run=run)} to redo from there, or {START_ANEW}")
    assert tree_state(output_dir) == before
