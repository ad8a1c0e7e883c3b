"""The suites: flags generated from one config, bad flags stop early, every suite runs with --smoke."""

import dataclasses
import glob
import importlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from tensorboard.backend.event_processing import event_accumulator

import lth_keras
from experiments import branches
from experiments import config as config_lib
from experiments import components, layout, progress, runner
from tests.helpers.cli import run_experiment

SUITES = ["lenet", "conv2", "conv4", "conv6", "vgg16", "vgg19", "resnet18", "resnet20"]


def _suite(name):
    return importlib.import_module(f"experiments.{name}").DEFAULTS


def test_paper_defaults():
    lenet, conv6, resnet18, vgg19 = (_suite(n) for n in ("lenet", "conv6", "resnet18", "vgg19"))
    assert (lenet.iterations, lenet.batch_size, lenet.optimizer, lenet.learning_rate) == (
        50000,
        60,
        "adam",
        1.2e-3,
    )
    assert lenet.output_prune_rate is None and lenet.prune_rate == 0.2  # output at half rate
    assert (conv6.conv_prune_rate, conv6.prune_rate, conv6.learning_rate, conv6.iterations) == (
        0.15,
        0.2,
        3e-4,
        30000,
    )
    assert _suite("conv2").conv_prune_rate == _suite("conv4").conv_prune_rate == 0.1
    assert resnet18.scope == vgg19.scope == "global" and resnet18.conv_prune_rate == 0.2
    assert resnet18.lr_drops == (20000, 25000) and vgg19.warmup == 10000
    assert _suite("resnet20").rewind_step == 500 and _suite("vgg16").rewind_step == 1000
    assert all(_suite(n).validation_size == 5000 for n in SUITES)


@pytest.mark.parametrize(
    "suite, overrides, jit, per_execution, fused",
    [
        ("lenet", {}, True, 100, True),  # XLA on by default where it was measured faster
        ("conv6", {}, False, 100, False),  # conv nets: XLA was slower on a CPU
        ("lenet", {"jit_compile": False, "steps_per_execution": 20}, False, 20, False),
        ("lenet", {"fused_steps": False}, True, 100, False),
    ],
)
def test_scripts_compile_with_their_speed_settings(suite, overrides, jit, per_execution, fused):
    config = dataclasses.replace(_suite(suite), dataset="synthetic", **overrides)
    splits = components.load_data(config, _suite(suite).dataset)
    model = components.build_model(config, splits, seed=0)
    components.compile_model(model, config)
    assert model._jit_compile is jit
    assert int(model._steps_per_execution.numpy()) == per_execution
    assert lth_keras.fused_steps.is_fused(model) is fused
    first = next(iter(components.training_batches(config, splits, model)))
    leading = (per_execution, config.batch_size) if fused else (config.batch_size,)
    assert first[0].shape[: len(leading)] == leading
    # Multi-replica runs on CPUs never get XLA (it has no collectives there): tested by
    # test_distribution.py's multi-worker suite run.


def test_flags_are_generated_from_the_config():
    values = flags.FlagValues()
    config_lib.flags_from_config(_suite("conv6"), values)
    values(["prog", "--prune_iters=3", "--lr_drops=10,20", "--conv_prune_rate=0.3", "--one_shot"])
    config = config_lib.config_from_flags(values)
    assert config == dataclasses.replace(
        _suite("conv6"), prune_iters=3, lr_drops=(10, 20), conv_prune_rate=0.3, one_shot=True
    )
    names = {f.name for f in dataclasses.fields(config_lib.ExperimentConfig)}
    for required in (
        "prune_iters",
        "prune_rate",
        "one_shot",
        "rewind_step",
        "control",
        "dataset",
        "data_dir",
        "iterations",
        "batch_size",
        "learning_rate",
        "warmup",
        "dropout",
        "seed",
        "replicates",
        "eval_every",
        "output_dir",
        "strategy",
        "tpu",
        "smoke",
    ):
        assert required in names


@pytest.mark.parametrize(
    "overrides,flag",
    [
        ({"prune_rate": 1.0}, "prune_rate"),
        ({"conv_prune_rate": -0.1}, "conv_prune_rate"),
        ({"control": "shuffle"}, "control"),
        ({"strategy": "horovod"}, "strategy"),
        ({"strategy": "tpu"}, "tpu"),
        ({"iterations": 0}, "iterations"),
        ({"eval_every": 7}, "eval_every"),
        ({"rewind_step": 50000}, "rewind_step"),
        ({"rewind_step": 150}, "rewind_step"),
        ({"batch_size": 0}, "batch_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"model": "alexnet"}, "model"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"replicates": 0}, "replicates"),
    ],
)
def test_bad_flags_stop_before_training_naming_the_flag(overrides, flag, tmp_path):
    config = dataclasses.replace(_suite("lenet"), output_dir=str(tmp_path), **overrides)
    with pytest.raises(ValueError, match=f"--{flag}="):
        runner.train_and_evaluate(config)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("control", ["reinit", "random_prune"])
def test_a_control_refuses_one_shot_before_writing_anything(control, tmp_path):
    config = dataclasses.replace(
        _suite("lenet"),
        dataset="synthetic",
        smoke=True,
        output_dir=str(tmp_path),
        control=control,
        one_shot=True,
    )
    with pytest.raises(ValueError, match="^--one_shot=True: controls retrain"):
        runner.train_and_evaluate(config)
    assert not os.listdir(tmp_path)


def test_every_branch_is_registered_once_with_what_the_runner_and_report_need():
    names = [branch.name for branch in branches.BRANCHES.values()]
    assert len(set(names)) == len(names) == len(branches.BRANCHES)
    assert branches.BRANCHES["none"] is branches.TICKET
    assert list(branches.line_styles()) == names
    for control, branch in branches.BRANCHES.items():
        assert branch.control == control and branch.description and branch.line_style
        assert f"{control}: {branch.description}" in branches.flag_help()


def _scalars(run_dir):
    """Tag -> [(step, value)] of the scalars; non-scalar tags (HParams, images) map to their steps."""
    values = {}
    for path in glob.glob(os.path.join(layout.tensorboard_dir(run_dir), "events.*")):
        accumulator = event_accumulator.EventAccumulator(path, size_guidance={"tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            arrays = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)]
            values[tag] = [(step, float(a) if a.ndim == 0 else None) for step, a in arrays]
    return values


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_runs_with_smoke(suite, tmp_path):
    config = dataclasses.replace(_suite(suite), dataset="synthetic", smoke=True, output_dir=str(tmp_path))
    results = runner.train_and_evaluate(config, suite_dataset=_suite(suite).dataset)
    rounds = results[0]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert (
        rounds[0]["weights_remaining"]
        == 1.0
        > rounds[1]["weights_remaining"]
        > rounds[2]["weights_remaining"]
    )
    experiment = layout.experiment_dir(runner.resolve(config))
    run = layout.run_dir(experiment, "ticket", 0)
    assert json.load(open(layout.config_file(experiment)))["model"] == suite
    for r in range(3):
        assert os.path.exists(os.path.join(layout.round_dir(run, r), "masks.npz"))
    scalars = _scalars(run)
    assert [step for step, _ in scalars["weights_remaining"]] == [0, 1, 2]
    np.testing.assert_allclose(
        [v for _, v in scalars["weights_remaining"]], [r["weights_remaining"] for r in rounds]
    )
    assert "final/test_accuracy" in scalars and "final/val_loss" in scalars and "early_stop_step" in scalars
    assert any(tag.startswith("sparsity/") for tag in scalars)
    assert "_hparams_/session_start_info" in scalars  # the HParams plugin's record of this run
    # The plot images: drawn at most once a minute (PLOT_EVERY_SECONDS) and when fit ends.
    assert [step for step, _ in scalars["plot/accuracy"]] == [2]


def test_plot_images_are_drawn_each_round_when_rounds_are_far_enough_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "PLOT_EVERY_SECONDS", 0.0)
    config = dataclasses.replace(_suite("lenet"), dataset="synthetic", smoke=True, output_dir=str(tmp_path))
    runner.train_and_evaluate(config)
    run = layout.run_dir(layout.experiment_dir(runner.resolve(config)), "ticket", 0)
    scalars = _scalars(run)
    for tag in ("plot/accuracy", "plot/early_stop_step"):
        assert [step for step, _ in scalars[tag]] == [0, 1, 2]


def test_controls_retrain_the_saved_masks_and_reruns_skip_finished_rounds(tmp_path):
    base = dataclasses.replace(_suite("lenet"), dataset="synthetic", smoke=True, output_dir=str(tmp_path))
    ticket = runner.train_and_evaluate(base)[0]
    for control in ("reinit", "random_prune"):
        rounds = runner.train_and_evaluate(dataclasses.replace(base, control=control))[0]
        assert [r["round"] for r in rounds] == [r["round"] for r in ticket]
        assert [r["weights_remaining"] for r in rounds] == pytest.approx(
            [r["weights_remaining"] for r in ticket]
        )
        run = layout.run_dir(layout.experiment_dir(runner.resolve(base)), control, 0)
        for r in rounds:  # the control trained exactly the ticket's mask of that round
            ticket_mask = lth_keras.Masks.load(
                layout.round_dir(
                    layout.run_dir(layout.experiment_dir(runner.resolve(base)), "ticket", 0), r["round"]
                )
            )
            control_mask = lth_keras.Masks.load(layout.round_dir(run, r["round"]))
            same = all(np.array_equal(ticket_mask[k], control_mask[k]) for k in ticket_mask)
            assert same == (control == "reinit") or r["round"] == 0
    # The same command again finds every round finished and trains nothing.
    assert runner.train_and_evaluate(base)[0] == ticket


def test_a_control_without_a_ticket_says_what_to_run(tmp_path):
    config = dataclasses.replace(
        _suite("lenet"), dataset="synthetic", smoke=True, output_dir=str(tmp_path), control="reinit"
    )
    with pytest.raises(FileNotFoundError, match="--control=none"):
        runner.train_and_evaluate(config)


def test_bad_flag_on_the_command_line_exits_with_its_name(tmp_path):
    result = run_experiment("conv6", "--prune_rate=1.5", f"--output_dir={tmp_path}", timeout=300)
    assert result.returncode == 2
    assert "--prune_rate=1.5" in result.stderr


def test_each_control_level_trains_as_on_a_model_built_for_it_alone(tmp_path):
    """A control's levels share one compiled model (ModelReset between them): each level's
    record equals the one of a model built, given the level's weights and compiled for it alone."""
    base = dataclasses.replace(
        _suite("lenet"), dataset="synthetic", smoke=True, dropout=0.5, output_dir=str(tmp_path / "runs")
    )
    runner.train_and_evaluate(base)
    config = runner.resolve(dataclasses.replace(base, control="random_prune"))
    shared = runner.train_and_evaluate(config)[0]
    assert [r["round"] for r in shared] == [0, 1, 2]
    splits = components.shrink(components.load_data(config, config.dataset))
    ticket_dir = layout.run_dir(layout.experiment_dir(config), "ticket", 0)
    theta_0 = lth_keras.WeightSnapshot.load(layout.theta_file(ticket_dir, "theta_0"))
    branch = branches.selected("random_prune")
    for record in shared:
        level = record["round"]
        model = components.build_model(config, splits, config.seed)
        masks = lth_keras.Masks.load(layout.round_dir(ticket_dir, level))
        lth_keras.random_prune(model, theta_0, seed=config.seed + 1 + level, masks=masks)
        components.compile_model(model, config)
        dirs = {"write": str(tmp_path / f"alone_{level}")}
        callback = branches._round_logger(
            branch, config, splits, dirs, 1, 0, first_round=level, is_ticket=False
        )
        branches.train_rounds(config, splits, model, callback, 1, None)
        assert callback.rounds == [record]
