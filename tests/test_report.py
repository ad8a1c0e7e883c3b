"""The report: aggregation over replicates, the verdict, tables, CSV and plots."""

import csv
import dataclasses
import os

import pytest

from experiments import branches
from experiments import report as report_cli
from experiments import runner
from experiments.lenet import DEFAULTS as LENET
from lth_keras.paper import report


def _record(round_index, remaining, early_acc, final_acc, step):
    return {
        "round": round_index,
        "weights_remaining": remaining,
        "metrics": {"test_accuracy": final_acc},
        "early_stop_metrics": {"test_accuracy": early_acc},
        "early_stop_step": step,
    }


LEVELS = [1.0, 0.8, 0.64, 0.512]


def _run(accuracies, steps=(100, 90, 80, 120)):
    return [_record(i, LEVELS[i], a, a - 0.01, s) for i, (a, s) in enumerate(zip(accuracies, steps))]


def test_aggregate_gives_mean_and_std_over_replicates():
    rows = report.aggregate([_run([0.90, 0.91, 0.92, 0.80]), _run([0.92, 0.93, 0.90, 0.84])])
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["replicates"] == 2
    assert rows[0]["early_stop_accuracy"] == pytest.approx((0.91, 0.01))
    assert rows[3]["final_accuracy"] == pytest.approx((0.81, 0.02))
    assert rows[1]["early_stop_step"] == pytest.approx((90, 0))


def test_aggregate_counts_only_replicates_that_reached_a_round():
    rows = report.aggregate([_run([0.9, 0.9, 0.9, 0.9]), _run([0.9, 0.9])[:2]])
    assert [r["replicates"] for r in rows] == [2, 2, 1, 1]


def test_verdict_single_replicate_uses_half_a_point():
    ticket = report.aggregate([_run([0.900, 0.903, 0.896, 0.890])])  # 0.896 is within 0.5 pp
    reinit = report.aggregate([_run([0.900, 0.880, 0.850, 0.800])])
    line = report.verdict("lenet", {"ticket": ticket, "reinit": reinit})
    assert "down to 64.0% of weights remaining" in line
    assert "random reinit there is 4.60 pp below it" in line


def test_verdict_with_replicates_uses_one_std():
    ticket = report.aggregate([_run([0.90, 0.90, 0.89, 0.85]), _run([0.92, 0.91, 0.91, 0.86])])
    line = report.verdict("x", {"ticket": ticket})  # dense 0.91 ± 0.01: 0.90 matches at 64%
    assert "down to 64.0%" in line
    assert report.verdict("empty", {}).startswith("empty: no finished dense round")


def test_markdown_table_and_csv_rows():
    branches = {
        "ticket": report.aggregate([_run([0.9, 0.91, 0.92, 0.8])]),
        "reinit": report.aggregate([_run([0.9, 0.88, 0.85, 0.7])]),
    }
    table = report.markdown_table(branches)
    lines = table.splitlines()
    assert lines[0].startswith("| round | weights remaining | ticket acc. @ early stop (%)")
    assert "reinit acc. @ end (%)" in lines[0]
    assert lines[3].startswith("| 1 | 80.00% | 91.00 ± 0.00 | 90.00 ± 0.00 | 90 ± 0 | 88.00 ± 0.00")
    rows = report.csv_rows("exp", branches)
    assert len(rows) == 8 and rows[0]["branch"] == "ticket" and rows[0]["early_stop_accuracy_mean"] == 0.9


@pytest.mark.parametrize("metric", ["accuracy", "early_stop_step"])
def test_plot_renders_a_png(metric):
    experiments = {
        "a": {
            "ticket": report.aggregate([_run([0.9, 0.91, 0.92, 0.8])]),
            "reinit": report.aggregate([_run([0.9, 0.88, 0.85, 0.7])]),
        },
        "b": {"ticket": report.aggregate([_run([0.8, 0.81, 0.82, 0.7])])},
    }
    figure = report.plot(experiments, metric, branches.line_styles())  # the registry's styles
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    styles = {c.get_label(): c.lines[0].get_linestyle() for c in axes.containers}
    assert styles == {"a (ticket)": "-", "a (reinit)": "--", "b (ticket)": "-"}  # controls dashed
    png = report.figure_png(figure)
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_report_command_on_real_runs(tmp_path):
    config = dataclasses.replace(
        LENET, dataset="synthetic", smoke=True, prune_iters=2, replicates=2, output_dir=str(tmp_path)
    )
    runner.train_and_evaluate(config)
    runner.train_and_evaluate(dataclasses.replace(config, control="reinit"))
    text = report_cli.build_report([str(tmp_path)], str(tmp_path))
    assert "## lenet_synthetic-" in text
    assert "ticket acc. @ early stop (%)" in text and "reinit acc. @ early stop (%)" in text
    assert "the ticket matches the dense network" in text
    with open(tmp_path / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["branch"] for r in rows} == {"ticket", "reinit"}
    assert {r["replicates"] for r in rows} == {"2"}
    for name in ("accuracy.png", "early_stop.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no finished rounds"):
        report_cli.build_report([str(tmp_path / "empty")], str(tmp_path))
    assert os.path.exists(tmp_path / "report.csv")
