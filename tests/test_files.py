"""A damaged, missing or foreign stored file stops a run with an error naming it; nothing else is touched."""

import dataclasses
import hashlib
import os
import shutil

import numpy as np
import pytest

from experiments import layout, progress, runner
from experiments.branches import TICKET
from lth_keras import storage
from tests.helpers.cli import run_experiment
from tests.helpers.lenet_runs import SMALL_LENET

# Two finished rounds of 4 Keras epochs; round 1 keeps checkpoints 6 and 8.
CONFIG = dataclasses.replace(SMALL_LENET, prune_iters=1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    directory = tmp_path_factory.mktemp("finished")
    runner.train_and_evaluate(dataclasses.replace(CONFIG, output_dir=str(directory)))
    return directory


def _copy(finished, tmp_path):
    """A copy of the finished experiment; returns (output dir, experiment dir, ticket run dir)."""
    output_dir = tmp_path / "runs"
    shutil.copytree(finished, output_dir)
    experiment = layout.experiment_dir(dataclasses.replace(CONFIG, output_dir=str(output_dir)))
    return str(output_dir), experiment, layout.run_dir(experiment, TICKET.name, 0)


def _hashes(root):
    result = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                result[path] = hashlib.sha256(f.read()).hexdigest()
    return result


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _garbage(path):
    with open(path, "w") as f:
        f.write("{not json")


def _foreign_snapshot(path):
    """θ₀ of a different model: one weight of another shape."""
    arrays = storage.load_arrays(path)
    key = sorted(arrays)[0]
    arrays[key] = np.zeros(arrays[key].shape[:-1] + (3,), arrays[key].dtype)
    storage.save_arrays(path, arrays)


def _foreign_masks(path):
    arrays = storage.load_arrays(path)
    key = sorted(arrays)[0]
    arrays[key] = np.ones((7, 7), np.float32)
    storage.save_arrays(path, arrays)


def _other_round(path):
    """metrics.json of round 0 replaced by round 1's."""
    shutil.copyfile(path.replace("round_0", "round_1"), path)


def _checkpoint(run, name):
    return os.path.join(layout.checkpoint_dir(layout.round_dir(run, 1)), name)


REDO_ROUND_1 = "delete {run}/round_1 and any later round_* directories"
REDO_ROUND_0 = "delete {run}/round_0 and any later round_* directories"
START_ANEW = "re-run with --overwrite to start anew"

# (file, damage, what the error says, what it advises); `run` is the ticket's replicate directory.
TICKET_CASES = {
    "truncated_checkpoint": (
        lambda run: _checkpoint(run, "ckpt-8"),  # TensorFlow's name for the checkpoint's files
        lambda prefix: _truncate(prefix + ".data-00000-of-00001"),
        "",
        REDO_ROUND_1,
    ),
    "missing_checkpoint": (
        lambda run: _checkpoint(run, "checkpoint"),
        lambda path: os.remove(path.replace("checkpoint/checkpoint", "checkpoint/ckpt-8.index")),
        "names a checkpoint that is missing",
        REDO_ROUND_1,
    ),
    "corrupt_checkpoint_index": (
        lambda run: _checkpoint(run, "checkpoint"),
        _garbage,
        "unreadable",
        REDO_ROUND_1,
    ),
    "corrupt_state": (lambda run: _checkpoint(run, "state-8.json"), _garbage, "not valid JSON", REDO_ROUND_1),
    "truncated_theta_0": (
        lambda run: layout.theta_file(run, "theta_0"),
        _truncate,
        "not a readable",
        START_ANEW,
    ),
    "missing_theta_0": (lambda run: layout.theta_file(run, "theta_0"), os.remove, "no such file", START_ANEW),
    "foreign_theta_0": (
        lambda run: layout.theta_file(run, "theta_0"),
        _foreign_snapshot,
        "do not fit this model",
        START_ANEW,
    ),
    "truncated_metrics": (
        lambda run: layout.metrics_file(layout.round_dir(run, 0)),
        _truncate,
        "not valid JSON",
        REDO_ROUND_0,
    ),
    "foreign_metrics": (
        lambda run: layout.metrics_file(layout.round_dir(run, 0)),
        _other_round,
        "not the record of round 0",
        REDO_ROUND_0,
    ),
    "corrupt_config": (
        lambda run: layout.config_file(os.path.dirname(os.path.dirname(run))),
        _garbage,
        "not valid JSON",
        START_ANEW,
    ),
}

CONTROL_CASES = {
    "truncated_masks": (_truncate, "not a readable"),
    "missing_masks": (os.remove, "no such file"),
    "foreign_masks": (_foreign_masks, "7, 7"),
}


def _check_refused(config, path, says, advice, run):
    """Runs `config`; checks the error and that every file that was there is unchanged."""
    before = _hashes(config.output_dir)
    config_json = layout.config_file(os.path.dirname(os.path.dirname(run)))
    if path != config_json:  # rewritten with this command's --prune_iters before anything is read
        del before[config_json]
    with pytest.raises(progress.RunFileError) as error:
        runner.train_and_evaluate(config)
    message = str(error.value)
    assert message.startswith(f"cannot use {path}: ") and says in message
    assert advice.format(run=run) in message
    after = _hashes(config.output_dir)
    assert {p: after.get(p) for p in before} == before  # new TensorBoard event files may appear


@pytest.mark.parametrize("case", sorted(TICKET_CASES))
def test_a_resumed_ticket_refuses_a_bad_file(finished, tmp_path, case):
    file_of, damage, says, advice = TICKET_CASES[case]
    output_dir, _, run = _copy(finished, tmp_path)
    path = file_of(run)
    damage(path)
    config = dataclasses.replace(CONFIG, prune_iters=2, output_dir=output_dir)
    _check_refused(config, path, says, advice, run)


@pytest.mark.parametrize("case", sorted(CONTROL_CASES))
def test_a_control_refuses_bad_ticket_masks(finished, tmp_path, case):
    damage, says = CONTROL_CASES[case]
    output_dir, _, run = _copy(finished, tmp_path)
    path = layout.masks_file(layout.round_dir(run, 1))
    damage(path)
    config = dataclasses.replace(CONFIG, control="random_prune", output_dir=output_dir)
    _check_refused(config, path, says, REDO_ROUND_1, run)


def test_the_script_exits_with_code_2_and_names_the_file(finished, tmp_path):
    output_dir, _, run = _copy(finished, tmp_path)
    path = _checkpoint(run, "state-8.json")
    _garbage(path)
    before = _hashes(output_dir)
    del before[layout.config_file(os.path.dirname(os.path.dirname(run)))]  # as in _check_refused
    flags = ["--dataset=synthetic", "--iterations=40", "--eval_every=10", "--checkpoint_every=20"]
    result = run_experiment(
        "lenet", *flags, "--batch_size=16", "--prune_iters=2", f"--output_dir={output_dir}"
    )
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: cannot use {path}: {path} is not valid JSON")
    assert last_line.endswith(f"To go on: {REDO_ROUND_1.format(run=run)} to redo from there, or {START_ANEW}")
    after = _hashes(output_dir)
    assert {p: after.get(p) for p in before} == before
