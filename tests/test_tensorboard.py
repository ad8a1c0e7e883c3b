"""TensorBoard curves within rounds: each validation interval's metrics at the run's own step."""

import dataclasses
import shutil

import numpy as np
import pytest

from experiments import layout, progress, runner
from experiments.branches import REINIT, TICKET
from lth_keras import tickets
from tests.helpers.lenet_runs import TWO_ROUNDS
from tests.helpers.tensorboard import scalars

# TWO_ROUNDS: 2 rounds of 4 intervals of 10 steps; round r's intervals end at r * 40 + 10, ... + 40.
STEPS = [10, 20, 30, 40, 50, 60, 70, 80]
ROUND_OF_STEP = [0, 0, 0, 0, 1, 1, 1, 1]
INTERVAL_TAGS = [
    "interval/loss",
    "interval/accuracy",
    "interval/val_loss",
    "interval/val_accuracy",
    "interval/round",
]


def experiment_of(output_dir, **settings):
    config = dataclasses.replace(TWO_ROUNDS, output_dir=str(output_dir), **settings)
    return config, layout.experiment_dir(runner.resolve(config))


def assert_interval_curves(run: str) -> None:
    written = scalars(run)
    for tag in INTERVAL_TAGS:
        assert [step for step, _ in written.get(tag, [])] == STEPS, tag
    assert [value for _, value in written["interval/round"]] == ROUND_OF_STEP


def test_each_interval_has_training_and_validation_metrics_at_the_runs_step(two_rounds):
    _, experiment = experiment_of(two_rounds)
    run = layout.run_dir(experiment, TICKET.name, 0)
    assert_interval_curves(run)
    written = scalars(run)
    for record in tickets.load_rounds(layout.round_dir(run, 1)):  # a round's last interval is its record
        last_step = (record["round"] + 1) * 40
        for name in ("loss", "val_accuracy"):
            value = dict(written[f"interval/{name}"])[last_step]
            assert value == pytest.approx(record["metrics"][name], rel=1e-6), (name, record["round"])
    assert [step for step, _ in written["weights_remaining"]] == [0, 1]  # per-round scalars stay by round


def test_a_control_numbers_each_level_as_its_own_range_of_steps(two_rounds, tmp_path):
    output_dir = tmp_path / "runs"
    shutil.copytree(two_rounds, output_dir)
    config, experiment = experiment_of(output_dir, control="reinit")
    runner.train_and_evaluate(config)
    assert_interval_curves(layout.run_dir(experiment, REINIT.name, 0))


class Crash(Exception):
    pass


def test_a_resumed_run_writes_each_steps_scalars_once(tmp_path, monkeypatch, capsys):
    config, experiment = experiment_of(tmp_path / "runs")
    original = progress.RoundLogger.on_epoch_end

    def crash_after_third_interval(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 2:  # the checkpoint is at interval 2; interval 3's scalars are on disk
            self.writer.flush()
            raise Crash()

    monkeypatch.setattr(progress.RoundLogger, "on_epoch_end", crash_after_third_interval)
    with pytest.raises(Crash):
        runner.train_and_evaluate(config)
    run = layout.run_dir(experiment, TICKET.name, 0)
    assert [step for step, _ in scalars(run)["interval/loss"]] == STEPS[:3]
    monkeypatch.setattr(progress.RoundLogger, "on_epoch_end", original)
    runner.train_and_evaluate(config)
    assert "resuming" in capsys.readouterr().out
    assert_interval_curves(run)
    assert np.isfinite([value for _, value in scalars(run)["interval/val_loss"]]).all()
