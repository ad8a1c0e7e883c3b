"""Ticket removal (experiments/removal.py, lth_keras.remove_ticket): the removal redraws exactly a
ticket's surviving weights from their initializers and nothing else, the study chains its tickets
that way, Jaccard overlaps are computed as defined, a SIGKILLed study resumes to the same records,
and bad flags are refused naming the flag before anything is written."""

import dataclasses
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import lth_keras
from experiments import layout, removal_study
from experiments import report as report_command
from lth_keras import controls
from tests.conftest import dense_model
from tests.helpers.cli import ROOT, run_experiment
from tests.helpers.lenet_runs import FLAGS, SMALL_LENET

SMALL_STUDY = dataclasses.replace(SMALL_LENET, prune_iters=2)
REMOVALS = 2


def _hand_masks(model, seed=0):
    rng = np.random.default_rng(seed)
    return {k: (rng.random(m.shape) < 0.3).astype(np.float32) for k, m in lth_keras.get_masks(model).items()}


def _expected_draws(model, seed):
    """Weight key -> what each pruned weight's own initializer draws with the removal's seed."""
    weights = lth_keras.adapters.for_model(model).pruned_weights(model)
    return {
        f"{layer.name}/{name}": np.asarray(
            controls.seeded_initializer(layer, name, seed * controls.SEED_STRIDE + i)(weight.shape)
        )
        for i, (layer, name, weight) in enumerate(weights)
    }


# --- lth_keras.remove_ticket -------------------------------------------------------------


def test_remove_ticket_redraws_exactly_the_survivors_from_their_initializers():
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
    theta_0 = lth_keras.take_snapshot(model)
    masks = _hand_masks(model)
    lth_keras.remove_ticket(model, masks, seed=5)
    after = lth_keras.take_snapshot(model)
    draws = _expected_draws(model, seed=5)
    assert after.keys() == theta_0.keys() and set(masks) < set(after)
    for key in after:
        kept = masks[key] > 0 if key in masks else np.zeros(after[key].shape, bool)
        assert after[key][~kept].tobytes() == theta_0[key][~kept].tobytes(), key  # bit for bit
        if key in masks:
            assert kept.sum() > 0 and np.all(after[key][kept] != theta_0[key][kept]), key
            np.testing.assert_array_equal(after[key][kept], draws[key][kept], err_msg=key)
    # The model stays dense: its own masks are not the ticket's.
    assert lth_keras.get_masks(model).weights_remaining == 1.0


def test_remove_ticket_same_seed_same_weights_other_seed_other_weights():
    def removed(seed):
        model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
        lth_keras.remove_ticket(model, _hand_masks(model), seed=seed)
        return lth_keras.take_snapshot(model)

    first, again, other = removed(3), removed(3), removed(4)
    assert all(first[k].tobytes() == again[k].tobytes() for k in first)
    assert any(first[k].tobytes() != other[k].tobytes() for k in first)


def test_remove_ticket_refuses_masks_of_another_model_touching_nothing():
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
    before = lth_keras.take_snapshot(model)
    masks = _hand_masks(model)
    masks.pop("fc2/kernel")
    with pytest.raises(ValueError, match="fc2/kernel"):
        lth_keras.remove_ticket(model, masks, seed=1)
    with pytest.raises(ValueError, match="seed"):
        lth_keras.remove_ticket(model, _hand_masks(model), seed=-1)
    after = lth_keras.take_snapshot(model)
    assert all(after[k].tobytes() == before[k].tobytes() for k in before)


# --- Jaccard -------------------------------------------------------------------------------

A = {"l/kernel": np.array([[1, 1, 0, 0], [1, 0, 0, 0]]), "m/kernel": np.array([1, 0])}
B = {"l/kernel": np.array([[1, 0, 1, 0], [0, 0, 0, 0]]), "m/kernel": np.array([1, 1])}


def test_jaccard_on_hand_made_masks():
    # l: both keep (0,0); either keeps (0,0) (0,1) (0,2) (1,0). m: both 1, either 2.
    assert removal_study.jaccard(A, B) == pytest.approx(2 / 6)
    assert removal_study.jaccard(A, A) == 1.0
    assert removal_study.jaccard(A, {k: 1 - np.asarray(v) for k, v in A.items()}) == 0.0
    empty = {k: np.zeros_like(v) for k, v in A.items()}
    assert removal_study.jaccard(empty, empty) == 1.0
    with pytest.raises(ValueError, match="m/kernel"):
        removal_study.jaccard(A, {"l/kernel": B["l/kernel"]})


def test_chance_jaccard_is_what_random_masks_of_those_counts_average():
    # l: 3 and 2 of 8 kept -> 3*2/8 = 0.75 expected in both; m: 1 and 2 of 2 -> 1.
    assert removal_study.chance_jaccard(A, B) == pytest.approx(1.75 / (3 + 2 + 1 + 2 - 1.75))
    rng = np.random.default_rng(0)
    a = {"w": (rng.random(20000) < 0.3).astype(np.float32)}
    b = {"w": (rng.random(20000) < 0.3).astype(np.float32)}
    assert removal_study.jaccard(a, b) == pytest.approx(removal_study.chance_jaccard(a, b), abs=0.01)


# --- the study, in-process -------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished study of two removals on tiny synthetic runs: (experiment dir, its summary)."""
    config = dataclasses.replace(SMALL_STUDY, output_dir=str(tmp_path_factory.mktemp("study")))
    removal_study.run_study(config, REMOVALS)
    experiment = layout.experiment_dir(config)
    return experiment, removal_study.summary(experiment)


def _run(experiment, k):
    return layout.run_dir(experiment, removal_study.branch_name(k), 0)


def test_each_removal_starts_from_the_last_networks_theta_0_with_its_tickets_survivors_redrawn(study):
    experiment, _ = study
    target = SMALL_STUDY.prune_iters
    for k in range(1, REMOVALS + 1):
        previous, run = _run(experiment, k - 1), _run(experiment, k)
        before = lth_keras.WeightSnapshot.load(layout.theta_file(previous, "theta_0"))
        after = lth_keras.WeightSnapshot.load(layout.theta_file(run, "theta_0"))
        masks = lth_keras.Masks.load(layout.round_dir(previous, target))
        assert 0 < masks.weights_remaining < 1 and after.keys() == before.keys()
        for key in after:
            kept = masks[key] > 0 if key in masks else np.zeros(after[key].shape, bool)
            assert after[key][~kept].tobytes() == before[key][~kept].tobytes(), (k, key)
            assert np.all(after[key][kept] != before[key][kept]), (k, key)
        # every run trains the dense network first
        assert lth_keras.Masks.load(layout.round_dir(run, 0)).weights_remaining == 1.0


def test_the_first_removal_draws_from_each_layers_initializer_with_the_removal_seed(study):
    experiment, _ = study
    from experiments import components

    config = SMALL_STUDY
    splits = components.synthetic_splits((28, 28, 1), seed=config.seed)
    model = components.build_model(config, splits, config.seed)
    draws = _expected_draws(model, removal_study.removal_seed(config.seed, 1))
    masks = lth_keras.Masks.load(layout.round_dir(_run(experiment, 0), config.prune_iters))
    theta = lth_keras.WeightSnapshot.load(layout.theta_file(_run(experiment, 1), "theta_0"))
    for key, mask in masks.items():
        np.testing.assert_array_equal(theta[key][mask > 0], draws[key][mask > 0], err_msg=key)


def test_the_summary_holds_each_tickets_records_and_overlaps(study):
    experiment, removals = study
    target = SMALL_STUDY.prune_iters
    assert [r.ticket for r in removals] == [0, 1, 2]
    for r in removals:
        records = lth_keras.load_ticket(layout.round_dir(_run(experiment, r.ticket), target)).rounds
        dense, ticket = records[0], records[target]
        assert r.dense["early_stop_accuracy"] == (dense["early_stop_metrics"]["test_accuracy"], None)
        assert r.dense["early_stop_step"] == (dense["early_stop_step"], None)
        assert r.found["early_stop_accuracy"] == (ticket["early_stop_metrics"]["test_accuracy"], None)
        assert r.found["weights_remaining"] == ticket["weights_remaining"]
        mine = lth_keras.Masks.load(layout.round_dir(_run(experiment, r.ticket), target))
        assert len(r.overlaps) == r.ticket
        for j, (mean, std) in enumerate(r.overlaps):
            theirs = lth_keras.Masks.load(layout.round_dir(_run(experiment, j), target))
            both = sum(np.sum((mine[k] > 0) & (theirs[k] > 0)) for k in mine)
            either = sum(np.sum((mine[k] > 0) | (theirs[k] > 0)) for k in mine)
            assert mean == pytest.approx(both / either) and std is None


def test_the_table_verdict_and_report_show_the_study(study, tmp_path):
    experiment, removals = study
    table = removal_study.table(removals)
    lines = table.splitlines()
    assert len(lines) == 2 + 3 and "Jaccard with ticket 1" in lines[0]
    assert lines[4].startswith("| 2 |") and f"{removals[2].overlaps[1][0]:.2f}" in lines[4]
    verdict = removal_study.verdict("x", removals)
    assert verdict.startswith("x: after 2 removals the dense network trains to ")
    assert f"{100 * removals[2].dense['early_stop_accuracy'][0]:.2f}%" in verdict
    text = report_command.build_report([experiment], str(tmp_path))
    assert "Ticket removal: tickets at round 2" in text and table in text
    assert os.path.getsize(tmp_path / report_command.REMOVAL_PLOT) > 0


def test_a_study_stored_with_another_target_round_is_refused(study):
    experiment, _ = study
    before = sorted(os.walk(experiment))
    config = dataclasses.replace(SMALL_STUDY, prune_iters=1, output_dir=os.path.dirname(experiment))
    with pytest.raises(ValueError, match=r"--prune_iters=1: .* tickets are round 2"):
        removal_study.run_study(config, REMOVALS)
    assert sorted(os.walk(experiment)) == before


# --- the command line: SIGKILL and refusals ------------------------------------------------

STUDY_FLAGS = FLAGS + [f"--removals={REMOVALS}"]  # FLAGS: 3 rounds of 4 epochs, --deterministic


def _records_and_masks(output_dir):
    """Every run's round records and masks, and each run's θ₀, as bytes."""
    experiment = layout.find_experiments(str(output_dir))[0]
    stored = {}
    for k in range(REMOVALS + 1):
        run = _run(experiment, k)
        stored[(k, "theta_0")] = open(layout.theta_file(run, "theta_0"), "rb").read()
        for index in layout.round_indices(run):
            round_directory = layout.round_dir(run, index)
            stored[(k, index, "rounds")] = open(layout.record_file(round_directory)).read()
            masks = np.load(layout.masks_file(round_directory))
            stored[(k, index, "masks")] = {key: masks[key].tobytes() for key in masks.files}
    return stored


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study on the command line, uninterrupted: (its stdout, its records and masks)."""
    output_dir = tmp_path_factory.mktemp("reference")
    result = run_experiment("removal", *STUDY_FLAGS, f"--output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, _records_and_masks(output_dir)


def _summary_lines(stdout):
    return stdout[stdout.index("Ticket removal:") : stdout.index("results:")]


@pytest.mark.parametrize(
    "when,count",
    [("epoch", 7), ("checkpoint", 9)],  # in ticket 0's round 1; inside removal 1's third checkpoint
    ids=["in_ticket_0", "in_removal_1"],
)
def test_a_sigkilled_study_resumes_to_identical_records(reference, tmp_path, when, count):
    killed = subprocess.run(
        [sys.executable, "-m", "tests.helpers.interrupted_run", when, str(count), "removal", *STUDY_FLAGS]
        + [f"--output_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    experiment = layout.find_experiments(str(tmp_path))[0]
    assert not os.path.exists(layout.record_file(layout.round_dir(_run(experiment, REMOVALS), 2)))
    result = run_experiment("removal", *STUDY_FLAGS, f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" in result.stdout
    stdout, stored = reference
    assert _records_and_masks(tmp_path) == stored
    assert _summary_lines(result.stdout) == _summary_lines(stdout)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--removals=0", "error: --removals=0: must be an integer >= 1"),
        ("--removals=two", "error: --removals=two: "),
        ("--control=reinit", "error: --control='reinit': the removal study finds tickets"),
        ("--prune_iters=0", "error: --prune_iters=0: the ticket removed is round --prune_iters"),
        ("--eval_every=7", "error: --eval_every=7: must divide --iterations=50000"),
    ],
)
def test_a_bad_flag_is_refused_naming_it_before_anything_is_written(tmp_path, flag, message):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "experiments.removal", flag, f"--output_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "|" not in line]  # importtime's lines
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")}
    assert os.listdir(tmp_path) == []
