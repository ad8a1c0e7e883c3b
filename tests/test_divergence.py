"""Training that diverges (NaN or inf) stops its round, is recorded, refused on re-run and reported."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import lth_keras
from experiments import layout, progress
from experiments import report as report_cli
from lth_keras.paper import report
from tests.conftest import compile_model, dense_data, dense_model
from tests.helpers.cli import run_experiment
from tests.helpers.lenet_runs import FLAGS, start_troubled_lenet, ticket_run_dir


def test_callback_stops_when_the_loss_turns_nan():
    x, y = dense_data(256)
    model = lth_keras.prune_for_lottery(dense_model(batch_norm=False), pruning_rate=0.2)
    compile_model(model, optimizer=lth_keras.keras.optimizers.SGD(1e8))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=3, callbacks=[ticket], verbose=0)
    assert len(history.epoch) == 1 and ticket.rounds == []
    assert ticket.diverged == {"round": 0, "step": 16, "reason": "loss nan"}
    assert ticket.state_dict()["diverged"] == ticket.diverged
    with pytest.raises(ValueError, match="diverged at round 0, step 16"):
        model.fit(x, y, batch_size=16, epochs=1, callbacks=[ticket], verbose=0)


def test_callback_stops_at_nan_weights_and_keeps_the_finished_round():
    x, y = dense_data(256)
    x[128:] = np.nan  # round 0 trains on the first 8 batches, round 1 on the NaNs
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.2))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = model.fit(data, steps_per_epoch=8, epochs=3, callbacks=[ticket], verbose=0)
    assert len(history.epoch) == 2  # stopped at the end of round 1's first epoch
    assert [r["round"] for r in ticket.rounds] == [0] and math.isfinite(ticket.rounds[0]["metrics"]["loss"])
    assert ticket.diverged == {"round": 1, "step": 8, "reason": "a weight is NaN or inf"}


def test_a_diverged_run_stops_is_refused_on_rerun_and_reported(tmp_path):
    process = start_troubled_lenet(tmp_path, "nan", 6)  # a weight turns NaN in round 1's second epoch
    run = ticket_run_dir(tmp_path)
    diverged = layout.diverged_file(layout.round_dir(run, 1))
    assert process.returncode == 3, process.stderr_text[-3000:]
    message = f"training diverged at round 1, step 20 (a weight is NaN or inf) in {run}"
    assert f"error: {message}; its finished rounds are kept. Re-running refuses" in process.stderr_text
    assert json.load(open(diverged)) == {"round": 1, "step": 20, "reason": "a weight is NaN or inf"}
    assert os.path.exists(layout.record_file(layout.round_dir(run, 0)))
    assert not os.path.exists(layout.record_file(layout.round_dir(run, 1)))
    # round 1's checkpoints are from before the NaN (epoch 4 ends round 0; 6 was not written)
    assert progress.resume_point(run)["state"]["epoch"] == 4

    again = run_experiment("lenet", *FLAGS, f"--output_dir={tmp_path}")
    assert again.returncode == 2 and message in again.stderr and "delete " + diverged in again.stderr
    assert not os.path.exists(layout.record_file(layout.round_dir(run, 1)))  # nothing retrained

    text = report_cli.build_report([str(tmp_path)], str(tmp_path))
    assert "ticket replicate 0 diverged at round 1, step 20 (a weight is NaN or inf)" in text
    assert "| 0 | 100.00% |" in text and "| 1 |" not in text
    assert (tmp_path / "accuracy.png").read_bytes().startswith(b"\x89PNG")


def test_nan_accuracies_are_left_out_of_plots():
    def record(index, accuracy):
        metrics = {"test_accuracy": accuracy}
        return {
            "round": index,
            "weights_remaining": 0.8**index,
            "metrics": metrics,
            "early_stop_metrics": metrics,
            "early_stop_step": 10,
        }

    rows = report.aggregate([[record(0, 0.9), record(1, float("nan")), record(2, 0.8)]])
    figure = report.plot({"x": {"ticket": rows}}, "accuracy")
    (line,) = [drawn for drawn in figure.axes[0].lines if drawn.get_label() == "x (ticket)"]  # its mean line
    np.testing.assert_allclose(line.get_ydata(), [90.0, 80.0])
    report.figure_png(figure)


def test_format_divergence():
    where = {"round": 3, "step": 1200, "reason": "loss nan"}
    assert report.format_divergence(where) == "diverged at round 3, step 1200 (loss nan)"
