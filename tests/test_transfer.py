"""Ticket transfer (experiments/transfer.py) and its target MaxGroup (lth_keras.paper.datasets).

A small LeNet ticket found on synthetic data (tests/helpers/lenet_runs.py's run) is
transferred to MaxGroup: each branch starts every level from exactly the source's masks and
θ₀ (the controls from the source's per-layer counts), a SIGKILLed transfer resumes to the
same records, the report judges it, and a command line that cannot run is refused naming
the flag before anything is written.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from experiments import layout, progress
from experiments import report as report_command
from lth_keras.paper import datasets, models
from lth_keras.paper import report as report_lib
from tests.helpers import lenet_runs
from tests.helpers.cli import ROOT, run_experiment

BRANCHES = ("ticket", "reinit", "random_prune")


# --- MaxGroup --------------------------------------------------------------------------


def _group_sums(x: np.ndarray) -> np.ndarray:
    """The 10 group sums of each image, from the definition in make_maxgroup's docstring."""
    sums = np.zeros((len(x), 10))
    for g in range(10):
        top, left = 14 * (g // 5), 1 + 5 * (g % 5)
        sums[:, g] = x[:, top : top + 14, left : left + 5].sum(axis=(1, 2))
    return sums


def test_maxgroup_is_labelled_by_the_largest_group_and_deterministic_by_seed():
    (x, y), (x_test, y_test) = datasets.make_maxgroup(train_size=500, test_size=100, seed=3)
    assert x.shape == (500, 28, 28) and x_test.shape == (100, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(y, _group_sums(x).argmax(axis=1))
    np.testing.assert_array_equal(y_test, _group_sums(x_test).argmax(axis=1))
    assert not x[:, :, [0, 26, 27]].any() and 0 <= x.min() and x.max() < 1  # pixels outside groups are 0
    assert set(y) == set(range(10))
    (again, labels), _ = datasets.make_maxgroup(train_size=500, test_size=100, seed=3)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(y, labels)
    (other, _), _ = datasets.make_maxgroup(train_size=500, test_size=100, seed=4)
    assert not np.array_equal(x, other)


def test_a_small_lenet_learns_maxgroup_well_above_chance_in_a_few_hundred_steps():
    import lth_keras

    keras = lth_keras.keras
    splits = datasets.load_dataset("maxgroup", validation_size=5000)
    assert splits.input_shape == datasets.INPUT_SHAPES["maxgroup"] == (28, 28, 1)
    assert len(splits.train[0]) == 55000 and len(splits.test[0]) == 10000 and splits.num_classes == 10
    model = models.MODELS["lenet"](input_shape=(28, 28, 1), num_classes=10, seed=0)
    model.compile(
        keras.optimizers.Adam(1.2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x, y = splits.train
    model.fit(x[:18000], y[:18000], batch_size=60, epochs=1, verbose=0)  # 300 steps
    _, accuracy = model.evaluate(*splits.test, batch_size=1000, verbose=0)
    assert accuracy > 0.5  # chance is 0.1


# --- a transfer of a small synthetic ticket ------------------------------------------------

TRANSFER_FLAGS = ["--dataset=maxgroup", "--deterministic"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("source")
    lenet_runs.run_lenet(output_dir)
    return lenet_runs.experiment_dir(output_dir)


def _transfer_dir(output_dir) -> str:
    (found,) = glob.glob(os.path.join(str(output_dir), "*_to_maxgroup-*"))
    return found


def run_transfer(source, output_dir, *flags) -> subprocess.CompletedProcess:
    result = run_experiment(
        "transfer", f"--source={source}", *TRANSFER_FLAGS, f"--output_dir={output_dir}", *flags
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("transfer")
    run_transfer(source, output_dir)
    return _transfer_dir(output_dir)


def _round(experiment, branch, index) -> str:
    return layout.round_dir(layout.run_dir(experiment, branch, 0), index)


def _npz(directory, name) -> dict:
    with np.load(os.path.join(directory, name)) as data:
        return {key: data[key] for key in data.files}


def _masked(theta: dict, masks: dict) -> dict:
    """θ as a level starts from it: each masked kernel times its mask, the rest as they are."""
    return {key: value * masks[key] if key in masks else value for key, value in theta.items()}


def test_the_transfer_is_named_after_its_source_and_stores_its_settings(source, reference):
    name = os.path.basename(source)
    assert os.path.basename(reference).startswith(f"{name}_to_maxgroup-")
    stored = json.load(open(layout.config_file(reference)))
    source_stored = json.load(open(layout.config_file(source)))
    assert stored["source_experiment"] == name and stored["dataset"] == "maxgroup"
    inherited = (
        "model",
        "iterations",
        "eval_every",
        "batch_size",
        "optimizer",
        "learning_rate",
        "prune_rate",
    )
    for key in inherited:
        assert stored[key] == source_stored[key], key  # the source's, as no flag changed them
    for branch in BRANCHES:  # each branch logs to TensorBoard like any run
        assert glob.glob(os.path.join(layout.run_dir(reference, branch, 0), "tensorboard", "events.out.*"))


def test_every_level_starts_from_the_sources_masks_and_theta_0_bit_for_bit(source, reference):
    theta_0 = _npz(layout.run_dir(source, "ticket", 0), "theta_0.npz")
    for index in (0, 1, 2):
        masks = _npz(_round(source, "ticket", index), "masks.npz")
        ticket = _round(reference, "ticket", index)
        transferred = _npz(ticket, "masks.npz")
        assert transferred.keys() == masks.keys()
        for key in masks:
            np.testing.assert_array_equal(transferred[key], masks[key])
        started = _npz(ticket, "theta_0.npz")  # the weights the level started from
        expected = _masked(theta_0, masks)
        assert started.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(started[key], expected[key], err_msg=f"round {index} {key}")


def test_a_late_rewound_ticket_transfers_from_its_theta_k(tmp_path):
    lenet_runs.run_lenet(tmp_path / "source", "--rewind_step=10")
    source = lenet_runs.experiment_dir(tmp_path / "source", rewind_step=10)
    run_transfer(source, tmp_path / "out", "--control=none")  # the ticket branch alone
    transfer = _transfer_dir(tmp_path / "out")
    assert not os.path.exists(layout.branch_dir(transfer, "reinit"))
    theta_k = _npz(layout.run_dir(source, "ticket", 0), "theta_k.npz")
    theta_0 = _npz(layout.run_dir(source, "ticket", 0), "theta_0.npz")
    assert not np.array_equal(theta_k["fc1/kernel"], theta_0["fc1/kernel"])
    for index in (0, 1, 2):
        masks = _npz(_round(source, "ticket", index), "masks.npz")
        started = _npz(_round(transfer, "ticket", index), "theta_0.npz")
        for key, value in _masked(theta_k, masks).items():
            np.testing.assert_array_equal(started[key], value, err_msg=f"round {index} {key}")


def test_the_controls_retrain_the_sources_masks_and_per_layer_counts(source, reference):
    theta_0 = _npz(layout.run_dir(source, "ticket", 0), "theta_0.npz")
    for index in (1, 2):
        masks = _npz(_round(source, "ticket", index), "masks.npz")
        reinit = _round(reference, "reinit", index)
        for key, mask in _npz(reinit, "masks.npz").items():
            np.testing.assert_array_equal(mask, masks[key])
            started = _npz(reinit, "theta_0.npz")[key]
            assert not started[mask == 0].any()  # pruned weights are 0
            assert np.mean(started[mask > 0] != theta_0[key][mask > 0]) > 0.99  # survivors redrawn
        random = _round(reference, "random_prune", index)
        random_masks = _npz(random, "masks.npz")
        for key, mask in random_masks.items():
            assert mask.sum() == masks[key].sum(), key  # the source's count of this layer
            assert not np.array_equal(mask, masks[key])
        started = _npz(random, "theta_0.npz")
        expected = _masked(theta_0, random_masks)
        for key in expected:
            np.testing.assert_array_equal(started[key], expected[key])


def test_the_records_follow_the_source_levels_and_the_report_judges_the_transfer(source, reference, tmp_path):
    source_rounds = progress.finished_rounds(layout.run_dir(source, "ticket", 0))
    for branch in BRANCHES:
        rounds = progress.finished_rounds(layout.run_dir(reference, branch, 0))
        assert [r["round"] for r in rounds] == [0, 1, 2]
        assert [r["weights_remaining"] for r in rounds] == [r["weights_remaining"] for r in source_rounds]
        assert all("test_accuracy" in r["metrics"] for r in rounds)
    text = report_command.build_report([reference], str(tmp_path))
    label = os.path.basename(reference)
    assert all(f"{branch} acc. @ early stop (%)" in text for branch in BRANCHES)
    assert f"{label}: the ticket matches the dense network" in text  # the suites' verdict
    (line,) = [line for line in text.splitlines() if line.startswith(label) and "ahead of" in line]
    assert "ahead of random reinit at" in line and "ahead of random pruning at" in line
    assert "of 2 pruned rounds" in line


def test_rerunning_a_finished_transfer_trains_nothing(source, reference, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(os.path.dirname(reference), copy, symlinks=True)
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(f"{copy}/**/rounds.json", recursive=True)}
    result = run_transfer(source, copy)
    assert "round 0:" not in result.stdout and "resuming" not in result.stdout
    assert {p: os.stat(p).st_mtime_ns for p in before} == before


def _records_and_masks(experiment) -> dict:
    found = {}
    for branch in BRANCHES:
        for index in (0, 1, 2):
            directory = _round(experiment, branch, index)
            records = json.load(open(layout.record_file(directory)))
            found[branch, index] = (records, _npz(directory, "masks.npz"))
    return found


@pytest.mark.parametrize(
    "count", [3, 4], ids=["mid_level", "after_a_level"]
)  # the ticket branch's first level: 4 epochs, a checkpoint every 2
def test_a_sigkilled_transfer_resumes_to_identical_records(source, reference, tmp_path, count):
    killed = subprocess.run(
        [sys.executable, "-m", "tests.helpers.interrupted_run", "epoch", str(count), "transfer"]
        + [f"--source={source}", *TRANSFER_FLAGS, f"--output_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = _transfer_dir(tmp_path)
    assert not os.path.exists(layout.record_file(_round(resumed, "ticket", 1)))
    result = run_transfer(source, tmp_path)
    assert ("resuming" in result.stdout) == (count == 3)
    expected, got = _records_and_masks(reference), _records_and_masks(resumed)
    for key, (records, masks) in expected.items():
        assert got[key][0] == records, f"{key}'s records differ"
        for name in masks:
            np.testing.assert_array_equal(got[key][1][name], masks[name])


# --- refusals ------------------------------------------------------------------------------


def _refused(output_dir, *flags) -> str:
    """Runs the transfer command; it must refuse with one `error:` line and write nothing."""
    result = run_experiment("transfer", f"--output_dir={output_dir}", *flags, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not os.path.exists(output_dir)
    return result.stderr.strip()


def test_a_source_that_is_not_a_finished_ticket_is_refused_naming_what_is_missing(source, tmp_path):
    out = tmp_path / "out"
    no_source = _refused(out, "--dataset=maxgroup")
    assert no_source.startswith("error: --source=None: give the experiment directory")
    missing = tmp_path / "nowhere"
    assert _refused(out, f"--source={missing}", "--dataset=maxgroup") == (
        f"error: --source='{missing}': no such directory"
    )
    assert _refused(out, f"--source={tmp_path}", "--dataset=maxgroup") == (
        f"error: --source='{tmp_path}': not an experiment directory: it has no config.json"
    )
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(layout.config_file(source), unfinished)
    message = _refused(out, f"--source={unfinished}", "--dataset=maxgroup")
    first_round = layout.record_file(layout.round_dir(layout.run_dir(str(unfinished), "ticket", 0), 0))
    assert message.startswith(f"error: --source='{unfinished}': its ticket has no finished round")
    assert f"({first_round} is missing)" in message


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--dataset=mnist1d"],
            "error: --dataset='mnist1d': its inputs have shape (40,), but the source's ticket "
            "({source}) was found on synthetic inputs of shape (28, 28, 1)",
        ),
        ([], "error: --dataset: give the target dataset (e.g. --dataset=maxgroup)"),
        (["--dataset=maxgroup", "--model=conv2"], "error: --model='conv2': a transfer trains the source's"),
        (["--dataset=maxgroup", "--rewind_step=10"], "error: --rewind_step=10: a transfer trains the"),
        (["--dataset=maxgroup", "--iterations=abc"], "error: --iterations=abc: invalid literal for int()"),
        (["--dataset=maxgroup", "--eval_every=7"], "error: --eval_every=7: must divide --iterations=40"),
        (["--dataset=maxgroup", "--control=signs"], "error: --control='signs': must be one of"),
        (["--dataset=maxgroup", "--replicates=2"], "error: --replicates=2: the source has a finished ticket"),
    ],
    ids=["input_shape", "no_dataset", "model", "pruning", "type", "inconsistent", "control", "replicates"],
)
def test_a_bad_flag_is_refused_naming_it_before_anything_is_written(source, tmp_path, flags, message):
    expected = message.format(source=os.path.basename(source))
    assert _refused(tmp_path / "out", f"--source={source}", *flags).startswith(expected)


def test_the_advantage_verdict_counts_the_pruned_rounds_where_the_ticket_is_ahead():
    def rows(*accuracies):
        return [
            {"round": i, "replicates": 1, "early_stop_accuracy": (a, None), "final_accuracy": (a, None)}
            for i, a in enumerate(accuracies)
        ]

    branches = {
        "ticket": rows(0.90, 0.90, 0.89, 0.88),
        "reinit": rows(0.50, 0.88, 0.87, 0.878),  # ahead by 2, 2 and 0.2 pp: 2 of 3
        "random_prune": rows(0.90, 0.90, 0.90, 0.90),  # never ahead
    }
    controls = {"reinit": "random reinit", "random_prune": "random pruning"}
    line = report_lib.advantage_verdict("x", branches, controls)
    assert line == (
        "x: the ticket keeps its advantage over random reinit only: ahead of random reinit at 2 of 3 "
        "pruned rounds (mean +1.40 pp); ahead of random pruning at 0 of 3 pruned rounds (mean -1.00 pp)"
    )
    branches["random_prune"] = rows(0.5, 0.8, 0.8, 0.8)
    assert "x: the ticket keeps its advantage: " in report_lib.advantage_verdict("x", branches, controls)
    branches["reinit"] = branches["ticket"]
    branches["random_prune"] = branches["ticket"]
    line = report_lib.advantage_verdict("x", branches, controls)
    assert line.startswith("x: the ticket does not keep its advantage: ")


def test_a_refusal_imports_no_tensorflow(source):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "experiments.transfer", f"--source={source}"]
        + ["--dataset=mnist1d"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "error: --dataset='mnist1d'" in result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "experiments.config" in imported  # the flags were read...
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")}
