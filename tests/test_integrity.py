"""Every stored file is verified before it is trusted or its last good copy deleted; a round
is a ticket; refusals write nothing; `experiments.verify` and the report say what failed."""

import dataclasses
import json
import os
import socket

import numpy as np
import pytest

import lth_keras
from experiments import integrity, layout, lock, runner
from experiments import report as report_cli
from experiments import verify as verify_cli
from experiments.branches import TICKET
from experiments.manifest import MANIFEST_FILE, Manifest
from lth_keras import storage
from lth_keras.paper import datasets
from tests.helpers.files import copy_tree, garbage, tree_state, truncate
from tests.helpers.lenet_runs import TWO_ROUNDS

THREE_ROUNDS = dataclasses.replace(TWO_ROUNDS, prune_iters=2)


def _copy(two_rounds, tmp_path):
    """A copy of the finished two-round experiment; returns (output dir, ticket run dir)."""
    output_dir = copy_tree(two_rounds, tmp_path / "runs")
    experiment = layout.experiment_dir(dataclasses.replace(TWO_ROUNDS, output_dir=output_dir))
    return output_dir, layout.run_dir(experiment, TICKET.name, 0)


def _masks(round_directory):
    return dict(lth_keras.Masks.load(round_directory))


def test_every_file_a_run_keeps_is_recorded_and_verifies(two_rounds):
    run = layout.run_dir(layout.find_experiments(str(two_rounds))[0], TICKET.name, 0)
    manifest = Manifest.load(run)
    assert manifest.unrecorded() == [] and manifest.problems() == {}
    for index in (0, 1):
        for name in ("masks.npz", "rounds.json", "theta_0.npz"):
            assert os.path.join(f"round_{index}", name) in manifest.entries
    assert not any(p.startswith(os.path.join("round_0", "checkpoint")) for p in manifest.entries)
    assert any(p.startswith(os.path.join("round_1", "checkpoint", "ckpt-8")) for p in manifest.entries)


def test_truncated_masks_are_rebuilt_from_their_checkpoint_before_it_is_deleted(two_rounds, tmp_path, capsys):
    """The issue's case: round 1's masks cut to 100 bytes, then the same command with one round more."""
    output_dir, run = _copy(two_rounds, tmp_path)
    round_1 = layout.round_dir(run, 1)
    original = _masks(round_1)
    truncate(layout.masks_file(round_1), 100)
    runner.train_and_evaluate(dataclasses.replace(THREE_ROUNDS, output_dir=output_dir))
    out = capsys.readouterr().out
    rebuilt = [line for line in out.splitlines() if line.startswith("rebuilt ")]
    assert rebuilt == [
        f"rebuilt {layout.masks_file(round_1)} (damaged: 100 bytes, "
        f"{Manifest.load(run).entries['round_1/masks.npz']['size']:,} when written) "
        f"from {layout.checkpoint_dir(round_1)}"
    ]
    restored = _masks(round_1)
    assert restored.keys() == original.keys()
    for key in original:
        np.testing.assert_array_equal(restored[key], original[key])
    assert not os.path.exists(layout.checkpoint_dir(round_1))  # deleted once round 2 verified
    assert integrity.problems(run) == []


def test_a_lost_theta_and_a_damaged_record_are_rebuilt_from_their_other_copies(two_rounds, tmp_path):
    output_dir, run = _copy(two_rounds, tmp_path)
    record = layout.record_file(layout.round_dir(run, 0))
    with open(record, "rb") as f:
        original_record = f.read()
    garbage(record)
    os.remove(layout.theta_file(run, "theta_0"))
    found = integrity.problems(run)
    assert {os.path.basename(p.path): p.source is not None for p in found} == {
        "rounds.json": True,
        "theta_0.npz": True,
    }
    runner.train_and_evaluate(dataclasses.replace(TWO_ROUNDS, output_dir=output_dir))
    with open(record, "rb") as f:
        assert f.read() == original_record  # the records kept with round 1's checkpoint, written the same way
    assert os.path.samefile(
        layout.theta_file(run, "theta_0"), layout.theta_file(layout.round_dir(run, 0), "theta_0")
    )
    assert integrity.problems(run) == []


def test_a_checkpoint_is_kept_while_its_round_files_fail(two_rounds, tmp_path, capsys):
    """The deletion after a round ends checks the files the checkpoint is the last copy of."""
    output_dir, run = _copy(two_rounds, tmp_path)
    logger = _logger(run)
    checkpoint, masks_path = (
        layout.checkpoint_dir(layout.round_dir(run, 1)),
        layout.masks_file(layout.round_dir(run, 1)),
    )
    for name in ("masks.npz", "rounds.json"):  # round 2 as if just finished and recorded
        storage.save_bytes(os.path.join(layout.round_dir(run, 2), name), b"x")
        logger.manifest.record(os.path.join(layout.round_dir(run, 2), name))
    with open(masks_path, "rb") as f:
        good_masks = f.read()
    truncate(masks_path)
    logger._drop_old_checkpoints(2)
    assert os.path.isdir(checkpoint)
    assert f"keeping {checkpoint}: {masks_path} did not verify; re-run to rebuild" in capsys.readouterr().out
    with open(masks_path, "wb") as f:
        f.write(good_masks)
    logger._drop_old_checkpoints(2)
    assert not os.path.exists(checkpoint) and integrity.problems(run) == []


def _logger(run):
    from experiments.progress import RoundLogger

    logger = RoundLogger(run, 2, "ticket", "-", epochs_per_round=4)
    logger.manifest = Manifest.load(run)
    return logger


def test_every_finished_round_of_a_ticket_and_of_a_control_is_a_ticket(two_rounds, tmp_path):
    output_dir, run = _copy(two_rounds, tmp_path)
    runner.train_and_evaluate(dataclasses.replace(TWO_ROUNDS, control="random_prune", output_dir=output_dir))
    experiment = os.path.dirname(os.path.dirname(run))
    control_run = layout.run_dir(experiment, "random_prune", 0)
    theta_0 = lth_keras.WeightSnapshot.load(layout.theta_file(run, "theta_0"))
    for round_directory in (layout.round_dir(run, 1), layout.round_dir(control_run, 1)):
        ticket = lth_keras.load_ticket(round_directory)
        assert [r["round"] for r in ticket.rounds][-1] == 1 and ticket.masks.weights_remaining < 1
        model = runner.components.build_model(TWO_ROUNDS, _splits(), seed=99)
        lth_keras.apply_ticket(model, ticket)
        masks, weights = lth_keras.get_masks(model), lth_keras.model_state.get_stored_weights(model)
        for key, mask in ticket.masks.items():
            np.testing.assert_array_equal(masks[key], mask)
            survivors = mask.astype(bool)
            np.testing.assert_array_equal(weights[key][survivors], ticket.theta_0[key][survivors])
            assert np.all(weights[key][~survivors] == 0)
    # the ticket's rounds share the run's θ₀ file; random pruning starts from that θ₀ too
    assert os.path.samefile(
        layout.theta_file(layout.round_dir(run, 1), "theta_0"), layout.theta_file(run, "theta_0")
    )
    control = lth_keras.load_ticket(layout.round_dir(control_run, 1))
    for key, mask in control.masks.items():
        survivors = mask.astype(bool)
        np.testing.assert_array_equal(control.theta_0[key][survivors], theta_0[key][survivors])


def _splits():
    return runner.components.load_data(TWO_ROUNDS, "synthetic")


def _hold_lock(experiment):
    """A lock held by a live process (this one), as a second command would find it."""
    with open(layout.lock_file(experiment, TICKET.name), "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)


def _diverged(run):
    path = layout.diverged_file(layout.round_dir(run, 1))
    storage.save_json(path, {"round": 1, "step": 12, "reason": "the loss is NaN"})
    Manifest.load(run).record(path)


def _other_settings_stored(run):
    """The stored config as a command with another learning rate would have left it."""
    path = layout.config_file(os.path.dirname(os.path.dirname(run)))
    stored = storage.load_json(path)
    storage.save_json(path, {**stored, "learning_rate": 0.5})


# refusal -> (how to set it up on a copy of the two-round run, the config, the error, what it says)
REFUSALS = {
    "other_settings": (_other_settings_stored, {}, ValueError, "other settings (learning_rate"),
    "lock_held": (
        lambda run: _hold_lock(os.path.dirname(os.path.dirname(run))),
        {},
        lock.LockedError,
        "another run",
    ),
    "theta_0_truncated_in_place": (
        lambda run: truncate(layout.theta_file(run, "theta_0"), 100),
        {},
        integrity.RunFileError,
        "there is no other copy of it",
    ),
    "diverged": (_diverged, {}, ValueError, "Re-running refuses"),
    "bad_setting": (lambda run: None, {"prune_rate": 1.5}, ValueError, "1.5"),
    "manifest_damaged": (
        lambda run: garbage(os.path.join(run, MANIFEST_FILE)),
        {},
        integrity.RunFileError,
        "--record_as_is",
    ),
    "control_of_a_ticket_with_damaged_masks": (
        lambda run: truncate(layout.masks_file(layout.round_dir(run, 0))),
        {"control": "reinit"},
        integrity.RunFileError,
        "round_0/masks.npz: damaged",
    ),
    "dataset_unavailable": (
        lambda run: None,
        {"dataset": "cifar10", "data_dir": "no_data"},
        datasets.DatasetUnavailableError,
        "cifar10",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_command_writes_nothing(two_rounds, tmp_path, case, monkeypatch):
    set_up, settings, error, says = REFUSALS[case]
    output_dir, run = _copy(two_rounds, tmp_path)
    set_up(run)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
    monkeypatch.chdir(tmp_path)
    config = dataclasses.replace(THREE_ROUNDS, output_dir=output_dir, **settings)
    before = tree_state(tmp_path)
    with pytest.raises(error, match=None) as raised:
        runner.train_and_evaluate(config)
    assert says in str(raised.value)
    assert tree_state(tmp_path) == before


def test_a_control_without_a_ticket_leaves_no_directory(tmp_path):
    config = dataclasses.replace(TWO_ROUNDS, control="reinit", output_dir=str(tmp_path / "runs"))
    with pytest.raises(FileNotFoundError, match="run the same command with --control=none first"):
        runner.train_and_evaluate(config)
    assert list(tmp_path.iterdir()) == []


def test_verify_names_each_failing_file_what_it_holds_and_the_way_on(two_rounds, tmp_path, capsys):
    output_dir, run = _copy(two_rounds, tmp_path)
    assert verify_cli.verify([output_dir]) == 0
    assert "1 runs checked, all verify" in capsys.readouterr().out
    truncate(layout.masks_file(layout.round_dir(run, 1)))
    truncate(layout.theta_file(run, "theta_0"))
    assert verify_cli.verify([output_dir]) == 4  # θ₀ and its links in rounds 0 and 1, round 1's masks
    out = capsys.readouterr().out
    masks_line = next(line for line in out.splitlines() if "round_1/masks.npz" in line)
    assert (
        "round 1's masks" in masks_line
        and f"rebuilt from {layout.checkpoint_dir(layout.round_dir(run, 1))}" in masks_line
    )
    theta_line = next(
        line
        for line in out.splitlines()
        if line.startswith(f"cannot use {layout.theta_file(run, 'theta_0')}")
    )
    assert "θ₀" in theta_line and "no other copy" in theta_line and "--overwrite" in theta_line


def test_verify_exits_2_and_record_as_is_takes_the_files_as_they_are(two_rounds, tmp_path):
    from tests.helpers.cli import run_experiment

    output_dir, run = _copy(two_rounds, tmp_path)
    garbage(os.path.join(run, MANIFEST_FILE))
    result = run_experiment("verify", output_dir)
    assert result.returncode == 2 and f"cannot use {os.path.join(run, MANIFEST_FILE)}" in result.stdout
    result = run_experiment("verify", "--record_as_is", run)
    assert result.returncode == 0 and "recorded" in result.stdout
    assert run_experiment("verify", output_dir).returncode == 0


def test_the_report_leaves_out_rounds_that_fail_verification(two_rounds, tmp_path):
    output_dir, run = _copy(two_rounds, tmp_path)
    whole = report_cli.build_report([output_dir], str(tmp_path / "whole"))
    assert "| 1 |" in whole
    truncate(layout.masks_file(layout.round_dir(run, 1)))
    text = report_cli.build_report([output_dir], str(tmp_path / "damaged"))
    assert "| 0 | 100.00% |" in text and "| 1 |" not in text
    left_out = "ticket replicate_0: 1 files fail verification, rounds 1 on left out"
    assert f"{left_out} (python -m experiments.verify {run})" in text
