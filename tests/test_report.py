"""The report: aggregation over replicates, the verdict, tables, CSV and plots."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest
from matplotlib.colors import to_rgb

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
    styles = {label: line.get_linestyle() for label, line in _branch_lines(axes).items()}
    assert styles == {"a (ticket)": "-", "a (reinit)": "--", "b (ticket)": "-"}  # controls dashed
    png = report.figure_png(figure)
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def _branch_lines(axes):
    """'<experiment> (<branch>)' -> the mean line drawn for that branch of that experiment."""
    return {line.get_label(): line for line in axes.lines if line.get_label().endswith(")")}


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
        legends.append(set(_branch_lines(figure.axes[0])))
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
    names = ("report.csv", "accuracy.png", "early_stop.png", report_cli.LAYERS_PLOT)
    files = [os.path.join(out, name) for name in names]
    assert text.endswith("Files written:\n" + "".join(f"- {path}\n" for path in files))
    assert all(os.path.getsize(path) > 0 for path in files)


def _layered_record(round_index, remaining, accuracy, layer_sparsity):
    return {**_record(round_index, remaining, accuracy, accuracy, 100), "layer_sparsity": layer_sparsity}


def _layered_run(sparsities, accuracy=0.9):
    """A run whose round i has layer_sparsity sparsities[i] (weights_remaining from LEVELS)."""
    return [_layered_record(i, LEVELS[i], accuracy, s) for i, s in enumerate(sparsities)]


def _mean_kept(replicates, round_index):
    """Layer -> percent of its weights kept at a round, mean over replicates of 1 - layer_sparsity,
    computed from the records themselves."""
    sparsities = [rounds[round_index]["layer_sparsity"] for rounds in replicates]
    return {layer: 100 * (1 - np.mean([s[layer] for s in sparsities])) for layer in sparsities[0]}


def _expected_landing(replicates):
    """(layer kept least, its percent, layer kept most, its percent) at the last round."""
    kept = _mean_kept(replicates, -1)
    least, most = min(kept, key=kept.get), max(kept, key=kept.get)
    return least, kept[least], most, kept[most]


def test_where_pruning_landed_names_the_layers_that_kept_least_and_most():
    # As global scope prunes: the layers' fractions differ from round to round and replicate
    # to replicate, and the layer that kept least is not the first.
    first = [{"fc1": 0, "fc2": 0, "output": 0}, {"fc1": 0.1, "fc2": 0.3, "output": 0.05}]
    second = [{"fc1": 0, "fc2": 0, "output": 0}, {"fc1": 0.2, "fc2": 0.5, "output": 0.15}]
    replicates = [_layered_run(first), _layered_run(second)]
    least, least_kept, most, most_kept = _expected_landing(replicates)
    line = report.pruning_landed(report.aggregate(replicates))
    expected = f"{least} kept least ({least_kept:.1f}%), {most} most ({most_kept:.1f}%)"
    assert line == f"where pruning landed (round 1): {expected}"
    assert least == "fc2" and most == "output"  # the means, not one replicate's values
    alike = report.aggregate([_layered_run([{"fc1": 0, "fc2": 0}, {"fc1": 0.2, "fc2": 0.2}])])
    assert report.pruning_landed(alike) == "where pruning landed (round 1): every layer kept 80.0%"
    assert report.pruning_landed(report.aggregate([_run([0.9, 0.9])])) is None  # records without layers
    assert report.pruning_landed([]) is None


def test_global_scope_report_says_and_draws_where_pruning_landed(tmp_path):
    config = dataclasses.replace(
        LENET,
        dataset="synthetic",
        smoke=True,
        prune_iters=2,
        replicates=2,
        scope="global",
        output_dir=str(tmp_path),
    )
    runner.train_and_evaluate(config)
    (experiment,) = layout.find_experiments(str(tmp_path))
    ticket = os.path.join(experiment, branches.TICKET.name)
    replicates = []
    for run in layout.replicate_dirs(ticket):
        with open(layout.record_file(layout.round_dir(run, 2))) as f:
            replicates.append(json.load(f))
    least, least_kept, most, most_kept = _expected_landing(replicates)
    kept = _mean_kept(replicates, -1)
    assert len({f"{v:.1f}" for v in kept.values()}) == len(kept)  # global: fc1 and fc2 differ too
    text = report_cli.build_report([str(tmp_path)], str(tmp_path))
    expected = f"{least} kept least ({least_kept:.1f}%), {most} most ({most_kept:.1f}%)"
    assert f"where pruning landed (round 2): {expected}" in text.splitlines()

    loaded = report_cli.load(experiment)
    label = os.path.basename(experiment)
    figure = report_cli.figures({label: loaded})[report_cli.LAYERS_PLOT]
    (axes,) = figure.axes
    lines = {line.get_label().split(":")[0]: line for line in axes.lines}
    assert set(lines) == set(kept) | {"all"}  # one line per layer, and all layers together
    for layer in kept:
        np.testing.assert_allclose(
            lines[layer].get_ydata(), [_mean_kept(replicates, r)[layer] for r in range(3)]
        )
        np.testing.assert_array_equal(lines[layer].get_xdata(), [0, 1, 2])
    assert lines[least].get_label() == f"{least}: {least_kept:.1f}%"
    assert loaded.title in axes.get_title(loc="left") and label in axes.get_title(loc="right")


def _three_branches(replicates=2):
    """An experiment's branches: the ticket and both controls, each over `replicates` runs."""
    accuracies = {
        "ticket": [[0.90, 0.91, 0.92, 0.90], [0.92, 0.94, 0.93, 0.91]],
        "reinit": [[0.90, 0.88, 0.86, 0.80], [0.91, 0.87, 0.85, 0.78]],
        "random_prune": [[0.89, 0.87, 0.84, 0.75], [0.90, 0.85, 0.83, 0.70]],
    }
    return {b: report.aggregate([_run(a) for a in runs[:replicates]]) for b, runs in accuracies.items()}


def _drawn_branches():
    """The registry's branches that `_three_branches` has rows for, in registry order."""
    return [b for b in branches.BRANCHES.values() if b.name in _three_branches(1)]


def _report_figure(experiments, metric="accuracy"):
    """The report's plot of `metric` for name -> (branches, title)."""
    found = {
        name: report_cli.Experiment(name, rows, [], title) for name, (rows, title) in experiments.items()
    }
    return report_cli.figures(found)[layout.PLOTS[metric]]


def _band_extent(collection):
    """(x min, x max, y min, y max) of a fill_between band."""
    vertices = np.concatenate([path.vertices for path in collection.get_paths()])
    return vertices[:, 0].min(), vertices[:, 0].max(), vertices[:, 1].min(), vertices[:, 1].max()


@pytest.mark.parametrize("metric", ["accuracy", "early_stop_step"])
def test_plot_legend_names_branches_by_label_and_the_caption_names_the_experiment(metric):
    name = "runs/lenet_fashion_mnist-1a2b3c"
    title = report.experiment_title("lenet", "fashion_mnist")
    figure = _report_figure({name: (_three_branches(), title)}, metric)
    axes = figure.axes[0]
    texts = [t.get_text() for t in axes.get_legend().get_texts()]
    assert texts == [b.label for b in _drawn_branches()] + ["dense network"]
    assert all(b.label and b.label != b.name for b in branches.BRANCHES.values())
    assert not any("1a2b3c" in text for text in texts)  # the hash is not in the legend...
    assert any(name in text.get_text() for text in figure.texts)  # ...but in the caption
    assert axes.get_title() == "LeNet-300-100 on Fashion-MNIST"
    colours = {label: line.get_color() for label, line in _branch_lines(axes).items()}
    assert len(set(colours.values())) == 3  # one colour per branch


def test_plot_draws_the_dense_network_and_std_bands_over_replicates():
    from matplotlib.collections import PolyCollection

    rows = _three_branches()
    figure = _report_figure({"x": (rows, "")})
    axes = figure.axes[0]
    dense_mean, dense_std = (100 * v for v in rows["ticket"][0]["early_stop_accuracy"])
    (dense,) = [line for line in axes.lines if line.get_label() == "dense network"]
    np.testing.assert_allclose(dense.get_ydata(), [dense_mean, dense_mean])
    (span,) = axes.patches  # axhspan: the dense network's ±1 std
    y = span.get_path().transformed(span.get_patch_transform()).vertices[:, 1]
    assert (y.min(), y.max()) == pytest.approx((dense_mean - dense_std, dense_mean + dense_std))
    lines = _branch_lines(axes)
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(rows)  # a band for each branch, not error bars
    assert not axes.containers
    for band, (branch, branch_rows) in zip(bands, rows.items()):
        means = np.array([100 * r["early_stop_accuracy"][0] for r in branch_rows])
        stds = np.array([100 * r["early_stop_accuracy"][1] for r in branch_rows])
        assert _band_extent(band) == pytest.approx(
            (100 * LEVELS[-1], 100 * LEVELS[0], (means - stds).min(), (means + stds).max())
        )
        assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(to_rgb(lines[f"x ({branch})"].get_color()))
    single = _report_figure({"x": (_three_branches(replicates=1), "")}).axes[0]
    assert not single.collections and not single.patches  # one replicate: no std to shade
    assert [t.get_text() for t in single.get_legend().get_texts()][-1] == "dense network"


def test_several_experiments_are_told_apart_by_marker_and_named_in_the_caption():
    title = report.experiment_title("lenet", "fashion_mnist")
    figure = _report_figure(
        {"a/lenet-1": (_three_branches(), title), "b/lenet-1": (_three_branches(1), title)}
    )
    axes = figure.axes[0]
    lines = _branch_lines(axes)
    assert {line.get_marker() for label, line in lines.items() if label.startswith("a/")} != {
        line.get_marker() for label, line in lines.items() if label.startswith("b/")
    }
    for branch in _drawn_branches():  # a branch has its colour in both experiments
        assert (
            lines[f"a/lenet-1 ({branch.name})"].get_color() == lines[f"b/lenet-1 ({branch.name})"].get_color()
        )
    texts = [t.get_text() for t in axes.get_legend().get_texts()]
    assert texts == [b.label for b in _drawn_branches()] + ["dense network"]
    caption = "\n".join(t.get_text() for t in figure.texts)
    assert "a/lenet-1" in caption and "b/lenet-1" in caption
    assert axes.get_title() == title  # one title, not repeated
    assert len([line for line in axes.lines if line.get_label() == "dense network"]) == 2


def test_the_experiment_title_comes_from_its_config(two_rounds):
    (experiment,) = layout.find_experiments(str(two_rounds))
    with open(layout.config_file(experiment)) as f:
        stored = json.load(f)
    expected = f"{report.NETWORK_TITLES[stored['model']]} on {report.DATASET_TITLES[stored['dataset']]}"
    assert report_cli.load(experiment).title == expected
    figure = report_cli.figures({"e": report_cli.load(experiment)})[layout.PLOTS["accuracy"]]
    assert figure.axes[0].get_title() == expected
