"""The report: aggregation over replicates, the verdict, tables, CSV and plots."""

import csv
import dataclasses
import os

import pytest

from experiments import branches, layout
from experiments import report as report_cli
from experiments import runner
from experiments.lenet import DEFAULTS as LENET
from lth_keras.paper import report
from tests.helpers.files import copy_tree, truncate


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
    assert lines[3] == "| 1 | 80.00% | 91.00 | 90.00 | 90 | 88.00 | 87.00 | 90 |"  # one replicate: no ±
    rows = report.csv_rows("exp", branches)
    assert len(rows) == 8 and rows[0]["branch"] == "ticket" and rows[0]["early_stop_accuracy_mean"] == 0.9
    assert rows[0]["early_stop_accuracy_std"] is None and list(rows[0]) == report.CSV_COLUMNS
    two = {"ticket": report.aggregate([_run([0.9, 0.91, 0.92, 0.8]), _run([0.9, 0.93, 0.92, 0.8])])}
    assert (
        report.markdown_table(two).splitlines()[3] == "| 1 | 80.00% | 92.00 ± 1.00 | 91.00 ± 1.00 | 90 ± 0 |"
    )


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


def _report_csv(out):
    with open(os.path.join(out, "report.csv")) as f:
        return list(csv.DictReader(f))


def test_experiment_labels_are_the_shortest_distinguishing_path_suffixes():
    paths = ["/x/runs/a/lenet-1", "/x/runs/b/lenet-1", "/x/runs/b/conv2-2"]
    assert report_cli.experiment_labels(paths) == ["a/lenet-1", "b/lenet-1", "conv2-2"]
    assert report_cli.experiment_labels(["runs/lenet-1"]) == ["lenet-1"]


def test_same_named_experiments_in_different_directories_both_appear(two_rounds, tmp_path, monkeypatch):
    for copy in ("a", "b"):
        copy_tree(two_rounds, tmp_path / copy)
    (name,) = os.listdir(two_rounds)
    truncate(layout.masks_file(layout.round_dir(layout.run_dir(str(tmp_path / "b" / name), "ticket", 0), 1)))
    legends = []
    plot = report.plot

    def plot_and_keep_legend(experiments, *args, **kwargs):
        figure = plot(experiments, *args, **kwargs)
        legends.append({c.get_label() for c in figure.axes[0].containers})
        return figure

    monkeypatch.setattr(report, "plot", plot_and_keep_legend)
    text = report_cli.build_report([str(tmp_path)], str(tmp_path))
    sections = {s.splitlines()[0]: s for s in text.split("## ")[1:]}
    assert set(sections) >= {f"a/{name}", f"b/{name}"}
    assert f"a/{name}: the ticket matches" in sections[f"a/{name}"] and "| 1 |" in sections[f"a/{name}"]
    assert "rounds 1 on left out" in sections[f"b/{name}"] and "| 1 |" not in sections[f"b/{name}"]
    rows = _report_csv(tmp_path)
    assert sorted((r["experiment"], r["round"]) for r in rows) == [
        (f"a/{name}", "0"),
        (f"a/{name}", "1"),
        (f"b/{name}", "0"),
    ]
    assert {r["directory"] for r in rows} == {str(tmp_path / c / name) for c in "ab"}
    assert legends == [{f"a/{name} (ticket)", f"b/{name} (ticket)"}] * 2  # accuracy and early stop


def test_one_replicate_has_no_plus_minus_and_says_how_many(two_rounds, tmp_path):
    output_dir = copy_tree(two_rounds, tmp_path / "runs")
    (experiment,) = layout.find_experiments(output_dir)
    text = report_cli.build_report([output_dir, experiment], str(tmp_path))  # the same one twice
    assert text.count("## ") == 1 and "±" not in text
    assert "Replicates: ticket 1" in text
    rows = _report_csv(tmp_path)
    assert rows and all(r["final_accuracy_mean"] and r["final_accuracy_std"] == "" for r in rows)


def test_replicates_line_names_rounds_with_fewer():
    branches = {
        "reinit": report.aggregate([_run([0.9] * 4)]),
        "ticket": report.aggregate([_run([0.9] * 4)] * 2),
    }
    branches["ticket"][3]["replicates"] = 1
    line = report.replicates_line(branches, order=["ticket"])
    assert line == "Replicates: ticket 2 (round 3: 1), reinit 1"


def test_the_report_lists_the_files_it_wrote(two_rounds, tmp_path):
    out = str(tmp_path / "out")
    text = report_cli.build_report([str(two_rounds)], out)
    files = [os.path.join(out, name) for name in ("report.csv", "accuracy.png", "early_stop.png")]
    assert text.endswith("Files written:\n" + "".join(f"- {path}\n" for path in files))
    assert all(os.path.getsize(path) > 0 for path in files)
