"""Deconstructing tickets in the suites: --mask_criterion and --control=signs run, write their
measures to the records, TensorBoard and the report, and a SIGKILLed run resumes to the
uninterrupted one's records (the new fields included)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from experiments import layout, runner
from experiments import report as report_cli
from lth_keras import Masks, tickets
from tests.helpers.lenet_runs import SMALL_LENET, assert_same_runs, kill_lenet, run_lenet, ticket_run_dir
from tests.helpers.tensorboard import scalars


@pytest.mark.parametrize(
    "criterion, when, count",
    [("movement", "epoch", 7), ("threshold", "epoch", 4)],
    ids=["movement_mid_round", "threshold_after_round_boundary"],
)
def test_a_sigkilled_run_of_a_criterion_resumes_to_identical_records(tmp_path, criterion, when, count):
    flag = f"--mask_criterion={criterion}"
    run_lenet(tmp_path / "reference", flag)
    kill_lenet(tmp_path / "resumed", when, count, flag)
    assert "resuming" in run_lenet(tmp_path / "resumed", flag).stdout
    assert_same_runs(tmp_path / "reference", tmp_path / "resumed", mask_criterion=criterion)
    records = tickets.load_rounds(
        layout.round_dir(ticket_run_dir(tmp_path / "resumed", mask_criterion=criterion), 2)
    )
    assert all(r["supermask_metrics"] and r["sign_stability"] is not None for r in records)
    assert [bool(r["pruned"]) for r in records] == [False, True, True]


def test_threshold_and_the_signs_control_reach_records_tensorboard_and_the_report(tmp_path):
    config = dataclasses.replace(
        SMALL_LENET, prune_iters=2, mask_criterion="threshold", threshold_scale=0.7, output_dir=str(tmp_path)
    )
    runner.train_and_evaluate(config)
    runner.train_and_evaluate(dataclasses.replace(config, control="signs"))
    runner.train_and_evaluate(dataclasses.replace(config, mask_criterion="large_final", threshold_scale=0.5))
    experiment = layout.experiment_dir(config)
    ticket = layout.run_dir(experiment, "ticket", 0)
    records = tickets.load_rounds(layout.round_dir(ticket, 2))
    for before, after in zip(records, records[1:]):  # what the round boundary removed, per layer
        masks_before = Masks.load(layout.round_dir(ticket, before["round"]))
        masks_after = Masks.load(layout.round_dir(ticket, after["round"]))
        removed = {k.split("/")[0]: int(masks_before[k].sum() - masks_after[k].sum()) for k in masks_after}
        assert after["pruned"] == removed
    written = scalars(ticket)
    assert [v for _, v in written["supermask/test_accuracy"]] == [
        r["supermask_metrics"]["test_accuracy"] for r in records
    ]
    assert np.allclose([v for _, v in written["sign_stability"]], [r["sign_stability"] for r in records])
    assert written["pruned/fc1"] == [
        (r["round"], r["pruned"]["fc1"]) for r in records[1:]
    ]  # none for round 0
    signs = layout.run_dir(experiment, "signs", 0)
    assert "supermask/test_accuracy" in scalars(signs)
    for index in range(3):  # the signs control trains the ticket's masks with θ₀'s signs
        start = tickets.load_ticket(layout.round_dir(signs, index)).theta_0
        theta_0 = tickets.load_ticket(layout.round_dir(ticket, 0)).theta_0
        masks = Masks.load(layout.round_dir(ticket, index))
        for key, mask in masks.items():
            alive = mask == 1
            np.testing.assert_array_equal(np.sign(start[key][alive]), np.sign(theta_0[key][alive]))
            assert not np.any(np.abs(start[key][alive]) == np.abs(theta_0[key][alive]))
    text = report_cli.build_report([str(tmp_path)], str(tmp_path))
    assert "signs supermask acc. (%)" in text and "ticket sign stability (%)" in text
    assert "## Mask criteria" in text and "| threshold | 2 |" in text and "| large_final | 2 |" in text
    assert os.path.exists(tmp_path / "report.csv")


def test_an_experiment_stored_before_the_criterion_flags_resumes_and_another_criterion_is_refused(tmp_path):
    config = dataclasses.replace(SMALL_LENET, smoke=True, prune_iters=1, output_dir=str(tmp_path))
    runner.train_and_evaluate(config)
    experiment = layout.experiment_dir(runner.resolve(config))
    stored = json.load(open(layout.config_file(experiment)))
    for name in ("mask_criterion", "threshold_scale"):  # as written before these settings existed
        del stored[name]
    json.dump(stored, open(layout.config_file(experiment), "w"))
    rounds = runner.train_and_evaluate(dataclasses.replace(config, prune_iters=2))[0]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    stored["mask_criterion"] = "movement"
    json.dump(stored, open(layout.config_file(experiment), "w"))
    with pytest.raises(ValueError, match="mask_criterion: stored 'movement', given 'large_final'"):
        runner.train_and_evaluate(config)
