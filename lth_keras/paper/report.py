"""Summaries of lottery runs: round tables, mean ± std over replicates, verdicts, plots,
and where pruning landed (weights kept per layer).

A number from a single replicate has no std: it is None, printed without "±", left empty
in CSV rows and drawn without a std band.

Everything here works on round records (the dicts `LotteryTicketCallback.rounds` holds);
where the records come from is the caller's business.
"""

import io
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

SINGLE_REPLICATE_TOLERANCE = 0.005  # 0.5 percentage points


def format_rounds_table(rounds: Iterable[Dict[str, Any]], accuracy_key: Optional[str] = None) -> str:
    """A Markdown table of one run: round, weights remaining, accuracy, early-stop step.

    `accuracy_key` picks the metric shown (default: the first of test_accuracy,
    val_accuracy, accuracy that the records have).
    """
    rounds = list(rounds)
    if accuracy_key is None:
        keys = ("test_accuracy", "val_accuracy", "accuracy")
        accuracy_key = next((k for k in keys if rounds and k in rounds[0]["metrics"]), "accuracy")
    lines = [
        f"| round | weights remaining | {accuracy_key} | early-stop step |",
        "|---:|---:|---:|---:|",
    ]
    for record in rounds:
        accuracy = record["metrics"].get(accuracy_key)
        accuracy_text = "" if accuracy is None else f"{accuracy:.4f}"
        early = record.get("early_stop_step")
        lines.append(
            f"| {record['round']} | {100 * record['weights_remaining']:.2f}% | {accuracy_text} | "
            f"{'' if early is None else early} |"
        )
    return "\n".join(lines)


def _mean_std(values: Sequence[Optional[float]]):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else None


def aggregate(replicates: Sequence[Sequence[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """Per round over replicates: weights remaining and (mean, std) of the headline numbers.

    Each row: round, weights_remaining, replicates (how many finished that round),
    early_stop_accuracy, final_accuracy, early_stop_step, each a (mean, std) pair of
    test accuracy at the early-stop step, at the end of the round, and the step (std None
    from fewer than two values, mean None from none), supermask_accuracy and sign_stability
    (the same pairs, of the records' supermask test accuracy and sign stability; (None, None)
    from records without them), and layer_remaining: layer -> mean fraction of its weights
    kept (from the records' layer_sparsity).
    """
    by_round: Dict[int, List[Dict[str, Any]]] = {}
    for rounds in replicates:
        for record in rounds:
            by_round.setdefault(record["round"], []).append(record)
    rows = []
    for index in sorted(by_round):
        records = by_round[index]
        rows.append(
            {
                "round": index,
                "weights_remaining": float(np.mean([r["weights_remaining"] for r in records])),
                "replicates": len(records),
                "early_stop_accuracy": _mean_std(
                    [r.get("early_stop_metrics", {}).get("test_accuracy") for r in records]
                ),
                "final_accuracy": _mean_std([r["metrics"].get("test_accuracy") for r in records]),
                "early_stop_step": _mean_std([r.get("early_stop_step") for r in records]),
                "supermask_accuracy": _mean_std(
                    [r.get("supermask_metrics", {}).get("test_accuracy") for r in records]
                ),
                "sign_stability": _mean_std([r.get("sign_stability") for r in records]),
                "layer_remaining": _layer_remaining(records),
            }
        )
    return rows


def _layer_remaining(records) -> Dict[str, float]:
    """Layer -> mean fraction of its weights kept (1 - its sparsity), over the records naming it."""
    kept: Dict[str, List[float]] = {}
    for record in records:
        for layer, sparsity in record.get("layer_sparsity", {}).items():
            kept.setdefault(layer, []).append(1.0 - sparsity)
    return {layer: float(np.mean(values)) for layer, values in kept.items()}


def _headline(row) -> Optional[float]:
    """The accuracy a ticket is judged by: at the early-stop step, else at the end."""
    return _accuracy_pair(row)[0]


def verdict(
    name: str, branches: Mapping[str, List[Dict[str, Any]]], ticket_branch="ticket", reinit_branch="reinit"
) -> str:
    """One line: the sparsest round where the ticket matches the dense network, and the reinit gap.

    "Matches" means the ticket's test accuracy (at early stop) is at least the dense
    network's minus one std over replicates, or minus 0.5 pp with a single replicate.
    `ticket_branch` and `reinit_branch` name the branches holding the ticket's rounds and
    the random-reinitialisation control's.
    """
    ticket = branches.get(ticket_branch) or []
    if not ticket or _headline(ticket[0]) is None:
        return f"{name}: no finished dense round with a test accuracy, no verdict"
    dense_mean = _headline(ticket[0])
    dense_std = ticket[0]["early_stop_accuracy"][1] or ticket[0]["final_accuracy"][1] or 0.0
    tolerance = dense_std if ticket[0]["replicates"] > 1 else SINGLE_REPLICATE_TOLERANCE
    matching = [row for row in ticket if (_headline(row) or -1.0) >= dense_mean - tolerance]
    best = min(matching, key=lambda row: row["weights_remaining"])
    line = (
        f"{name}: the ticket matches the dense network ({100 * dense_mean:.2f}%) down to "
        f"{100 * best['weights_remaining']:.1f}% of weights remaining "
        f"({100 * _headline(best):.2f}%, round {best['round']})"
    )
    reinit = {row["round"]: row for row in branches.get(reinit_branch) or []}
    if best["round"] in reinit and _headline(reinit[best["round"]]) is not None:
        gap = 100 * (_headline(best) - _headline(reinit[best["round"]]))
        line += f"; random reinit there is {gap:.2f} pp below it"
    return line


def advantage_verdict(
    name: str,
    branches: Mapping[str, List[Dict[str, Any]]],
    controls: Mapping[str, str],
    ticket_branch: str = "ticket",
) -> str:
    """One line: does the ticket keep its advantage over each control (`controls`: branch -> label)?

    At each pruned round (round > 0) both branches have, the ticket is ahead when its test
    accuracy (at early stop) exceeds the control's by more than `verdict`'s tolerance (one std
    of the ticket's over replicates, or 0.5 pp with a single replicate); it keeps its advantage
    over a control when it is ahead at more than half of those rounds.
    """
    ticket = {row["round"]: row for row in branches.get(ticket_branch) or [] if row["round"] > 0}
    parts, compared, kept = [], [], []
    for control, label in controls.items():
        theirs = {row["round"]: row for row in branches.get(control) or []}
        pairs = [
            (row, theirs[index])
            for index, row in ticket.items()
            if index in theirs and _headline(row) is not None and _headline(theirs[index]) is not None
        ]
        if not pairs:
            continue
        gaps = [_headline(mine) - _headline(other) for mine, other in pairs]
        ahead = sum(gap > _tolerance(mine) for gap, (mine, _) in zip(gaps, pairs))
        compared.append(label)
        if 2 * ahead > len(pairs):
            kept.append(label)
        parts.append(
            f"ahead of {label} at {ahead} of {len(pairs)} pruned rounds "
            f"(mean {100 * float(np.mean(gaps)):+.2f} pp)"
        )
    if not parts:
        return f"{name}: no pruned round with the ticket and a control, no verdict on its advantage"
    if len(kept) == len(compared):
        outcome = "keeps its advantage"
    elif kept:
        outcome = f"keeps its advantage over {' and '.join(kept)} only"
    else:
        outcome = "does not keep its advantage"
    return f"{name}: the ticket {outcome}: " + "; ".join(parts)


def _tolerance(row) -> float:
    """How far apart two accuracies must be to differ: one std over replicates, else 0.5 pp."""
    std = row["early_stop_accuracy"][1] or row["final_accuracy"][1]
    return std if row["replicates"] > 1 and std else SINGLE_REPLICATE_TOLERANCE


def _cell(pair, scale=1.0, digits=2):
    mean, std = pair
    if mean is None:
        return ""
    if std is None:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _ordered(branches: Iterable[str], order: Sequence[str]) -> List[str]:
    """The branch names in `order` first, then the others as given."""
    branches = list(branches)
    return [n for n in order if n in branches] + [n for n in branches if n not in order]


def _branch_replicates(branch: str, rows: List[Dict[str, Any]]) -> str:
    """'ticket 2', or 'ticket 2 (round 3: 1)' when fewer replicates reached some rounds."""
    most = max(row["replicates"] for row in rows)
    fewer = [f"round {row['round']}: {row['replicates']}" for row in rows if row["replicates"] < most]
    return f"{branch} {most}" + (f" ({', '.join(fewer)})" if fewer else "")


def replicates_line(branches: Mapping[str, List[Dict[str, Any]]], order: Sequence[str] = ()) -> str:
    """'Replicates: ticket 2, reinit 1': how many runs each branch's means are over."""
    counts = [_branch_replicates(b, branches[b]) for b in _ordered(branches, order) if branches[b]]
    return "Replicates: " + ", ".join(counts)


# Per-round measures of a ticket's parts (Zhou et al. 2019), shown for a branch whose records have them.
_DECONSTRUCTION = {"supermask_accuracy": "supermask acc. (%)", "sign_stability": "sign stability (%)"}


def _measured(rows: List[Dict[str, Any]]) -> List[str]:
    """The _DECONSTRUCTION keys some of the rows have a value of."""
    return [key for key in _DECONSTRUCTION if any(row.get(key, (None,))[0] is not None for row in rows)]


def markdown_table(branches: Mapping[str, List[Dict[str, Any]]], order: Sequence[str] = ()) -> str:
    """Rounds down, one column group per branch (ticket, controls; those in `order` first): test
    accuracy at early stop and at the end, the early-stop iteration, and, when its records have
    them, the supermask's test accuracy (m ⊙ θ, untrained) and the survivors' sign stability."""
    names = _ordered(branches, order)
    measured = {branch: _measured(branches[branch]) for branch in names}
    header = ["round", "weights remaining"]
    for branch in names:
        header += [f"{branch} acc. @ early stop (%)", f"{branch} acc. @ end (%)", f"{branch} early-stop it."]
        header += [f"{branch} {_DECONSTRUCTION[key]}" for key in measured[branch]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    rounds = sorted({row["round"] for rows in branches.values() for row in rows})
    for index in rounds:
        rows = {b: next((r for r in branches[b] if r["round"] == index), None) for b in names}
        any_row = next(r for r in rows.values() if r)
        cells = [str(index), f"{100 * any_row['weights_remaining']:.2f}%"]
        for branch in names:
            row = rows[branch]
            if row is None:
                cells += [""] * (3 + len(measured[branch]))
            else:
                cells += [
                    _cell(row["early_stop_accuracy"], 100),
                    _cell(row["final_accuracy"], 100),
                    _cell(row["early_stop_step"], 1, 0),
                ]
                cells += [_cell(row.get(key, (None, None)), 100) for key in measured[branch]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_STATISTICS = ("early_stop_accuracy", "final_accuracy", "early_stop_step", *_DECONSTRUCTION)
CSV_COLUMNS = ["experiment", "branch", "round", "weights_remaining", "replicates"] + [
    f"{key}_{part}" for key in _STATISTICS for part in ("mean", "std")
]


def csv_rows(experiment: str, branches: Mapping[str, List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """Flat rows (one per experiment, branch and round; keys CSV_COLUMNS) for a CSV file."""
    rows = []
    for branch, aggregated in branches.items():
        for row in aggregated:
            flat = {"experiment": experiment, "branch": branch, "round": row["round"]}
            flat["weights_remaining"] = row["weights_remaining"]
            flat["replicates"] = row["replicates"]
            for key in _STATISTICS:
                flat[f"{key}_mean"], flat[f"{key}_std"] = row.get(key, (None, None))
            rows.append(flat)
    return rows


# Names for plot titles, by config.json's model and dataset; others are shown as they are.
NETWORK_TITLES = {
    "lenet": "LeNet-300-100",
    "conv2": "Conv-2",
    "conv4": "Conv-4",
    "conv6": "Conv-6",
    "vgg16": "VGG-16",
    "vgg19": "VGG-19",
    "resnet18": "ResNet-18",
    "resnet20": "ResNet-20",
}
DATASET_TITLES = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "mnist1d": "MNIST-1D",
    "synthetic": "synthetic data",
    "maxgroup": "MaxGroup",
}
# Experiments sharing a plot are told apart by marker: (matplotlib marker, the caption's glyph).
_MARKERS = (("o", "●"), ("s", "■"), ("^", "▲"), ("D", "◆"), ("v", "▼"))
_DENSE_COLOUR = "0.45"
_BAND_ALPHA = 0.2
_CAPTION_FONT_SIZE = 7


def experiment_title(model: str, dataset: str) -> str:
    """'LeNet-300-100 on Fashion-MNIST', from config.json's `model` and `dataset`."""
    return f"{NETWORK_TITLES.get(model, model)} on {DATASET_TITLES.get(dataset, dataset)}"


def plot(
    experiments: Mapping[str, Mapping[str, List[Dict[str, Any]]]],
    metric: str,
    line_styles: Optional[Mapping[str, str]] = None,
    labels: Optional[Mapping[str, str]] = None,
    titles: Optional[Mapping[str, str]] = None,
    ticket_branch: str = "ticket",
):
    """A matplotlib figure of `metric` ('accuracy' or 'early_stop_step') vs weights remaining.

    `experiments`: name -> branch -> aggregated rows. Log x axis as in the paper. Each branch
    has one colour and line style (`line_styles`: branch -> matplotlib style; their order
    gives the colours and the legend's order; other branches dash-dotted, coloured after)
    and the legend entry `labels[branch]` (default: its name). A line is the mean over
    replicates, shaded ±1 std where there is a std. The dense network (`ticket_branch`'s
    round 0) is a grey horizontal reference with its ±1 std band. The title joins
    `titles` (experiment -> text); the caption names the experiments, by marker if several.
    """
    pyplot = _pyplot()
    line_styles, labels = line_styles or {}, labels or {}
    figure, axes = pyplot.subplots(figsize=(7, 4.8))
    colours = _branch_colours(experiments, line_styles)
    dense = [_draw_dense(axes, branches.get(ticket_branch), metric) for branches in experiments.values()]
    dense_band = None if all(d is None for d in dense) else any(dense)
    banded, levels = _draw_branches(axes, experiments, metric, colours, line_styles)
    _format_weights_axis(axes, levels)
    axes.set_ylabel("test accuracy at early stop (%)" if metric == "accuracy" else "early-stop iteration")
    axes.set_title(_joined_title(titles or {}, experiments))
    styles = {
        b: (colours[b], line_styles.get(b, "-."), banded[b]) for b in _ordered(banded, list(line_styles))
    }
    one_marker = _MARKERS[0][0] if len(experiments) == 1 else None
    handles, texts = _legend_entries(styles, labels, one_marker, dense_band)
    if handles:
        axes.legend(handles, texts, fontsize=8)
    caption_height = _caption(figure, list(experiments), any(banded.values()))
    figure.tight_layout(rect=(0, caption_height, 1, 1))
    return figure


def _draw_branches(axes, experiments, metric: str, colours, line_styles):
    """Each experiment's branches as mean lines with their std bands, one marker per experiment.
    Returns (branch -> whether any of its lines has a band, the percent levels drawn)."""
    banded: Dict[str, bool] = {}
    levels = set()
    for index, (name, branches) in enumerate(experiments.items()):
        marker = _MARKERS[index % len(_MARKERS)][0]
        for branch in _ordered(branches, list(line_styles)):
            series = _series(branches[branch], metric)
            if series is None:
                continue
            x, y, std = series
            levels.update(np.round(x, 1))
            style = {"color": colours[branch], "linestyle": line_styles.get(branch, "-."), "marker": marker}
            has_band = _draw_mean_and_band(axes, x, y, std, label=f"{name} ({branch})", **style)
            banded[branch] = banded.get(branch, False) or has_band
    return banded, levels


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _branch_colours(experiments, line_styles: Mapping[str, str]) -> Dict[str, Any]:
    """Branch -> colour, by its place in `line_styles` (the registry), so a branch keeps its
    colour in every plot; branches not there come after."""
    from matplotlib import pyplot

    cycle = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(dict.fromkeys(b for branches in experiments.values() for b in branches))
    order = list(line_styles) + [b for b in names if b not in line_styles]
    return {branch: cycle[order.index(branch) % len(cycle)] for branch in names}


def _accuracy_pair(row):
    """(mean, std) of the accuracy a ticket is judged by: at the early-stop step, else at the end."""
    pair = row["early_stop_accuracy"]
    return pair if pair[0] is not None else row["final_accuracy"]


def _statistic(row, metric: str):
    """(mean, std) of `metric` in a row, accuracy in percent; std None without one."""
    if metric != "accuracy":
        return row["early_stop_step"]
    mean, std = _accuracy_pair(row)
    return (None if mean is None else 100 * mean), (None if std is None else 100 * std)


def _series(rows, metric: str):
    """Arrays of percent weights remaining, mean and std (NaN where none) of the rows with a
    value; None if no row has one."""
    points = [(100 * r["weights_remaining"], *_statistic(r, metric)) for r in rows]
    points = [(x, y, math.nan if s is None else s) for x, y, s in points if y is not None]
    if not points:
        return None
    return tuple(np.array(column, dtype=float) for column in zip(*points))


def _draw_mean_and_band(axes, x, y, std, label, **style) -> bool:
    """The mean line and, where there is a std, its shaded ±1 std band; True if a band was drawn."""
    axes.plot(x, y, markersize=3.5, label=label, **style)
    has_std = np.isfinite(std)
    if has_std.any():
        half = np.where(has_std, std, 0.0)
        axes.fill_between(
            x, y - half, y + half, where=has_std, color=style["color"], alpha=_BAND_ALPHA, linewidth=0
        )
    return bool(has_std.any())


def _draw_dense(axes, ticket_rows, metric: str) -> Optional[bool]:
    """The dense network (the ticket's round 0) as a horizontal line with its ±1 std band where
    there is a std. Returns whether a band was drawn; None if there is no such round with a value."""
    if not ticket_rows or ticket_rows[0]["round"] != 0:
        return None
    mean, std = _statistic(ticket_rows[0], metric)
    if mean is None:
        return None
    axes.axhline(mean, color=_DENSE_COLOUR, linewidth=1.2, zorder=1, label="dense network")
    if std is not None:
        axes.axhspan(mean - std, mean + std, color=_DENSE_COLOUR, alpha=_BAND_ALPHA, linewidth=0, zorder=0)
    return std is not None


def _format_weights_axis(axes, levels) -> None:
    """Log x axis of percent weights remaining, labelled at (about ten of) the rounds' levels,
    dense on the left as in the paper."""
    import matplotlib.ticker

    axes.set_xscale("log")
    ticks = sorted(levels, reverse=True)
    ticks = ticks[:: math.ceil(len(ticks) / 10)]  # at most ten labels: more overlap
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.invert_xaxis()
    axes.set_xlabel("percent of weights remaining")
    axes.grid(True, which="both", alpha=0.3)


def _joined_title(titles: Mapping[str, str], experiments) -> str:
    """The experiments' titles, each once, in order."""
    return "; ".join(dict.fromkeys(titles[name] for name in experiments if titles.get(name)))


def _legend_entries(styles, labels: Mapping[str, str], marker: Optional[str], dense_band: Optional[bool]):
    """Legend handles and texts: a branch's line (with its band's patch where it has one) and
    label, then the dense reference (with a band if `dense_band`; none if None). `styles`:
    branch -> (colour, line style, banded). The marker is left out when it tells experiments
    apart (the caption says which is which)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def entry(colour, line_style, banded, **line):
        drawn = Line2D([], [], color=colour, linestyle=line_style, **line)
        return (Patch(color=colour, alpha=_BAND_ALPHA, linewidth=0), drawn) if banded else drawn

    handles = [entry(*style, marker=marker, markersize=3.5) for style in styles.values()]
    texts = [labels.get(branch, branch) for branch in styles]
    if dense_band is not None:
        handles.append(entry(_DENSE_COLOUR, "-", dense_band, linewidth=1.2))
        texts.append("dense network")
    return handles, texts


def _caption(figure, names: Sequence[str], banded: bool) -> float:
    """Writes the caption under the axes: which experiment (by marker, if several) and what
    the shading is. Returns its height as a fraction of the figure's."""
    shading = "lines: mean over replicates, shaded: ±1 std" if banded else "one replicate: no std band"
    if len(names) == 1:
        lines = [f"experiment {names[0]}; {shading}"]
    else:
        glyphs = [_MARKERS[i % len(_MARKERS)][1] for i in range(len(names))]
        lines = [f"{glyph} {name}" for glyph, name in zip(glyphs, names)] + [shading]
    figure.text(0.01, 0.01, "\n".join(lines), fontsize=_CAPTION_FONT_SIZE, color="0.3", va="bottom")
    line_height = 1.3 * _CAPTION_FONT_SIZE / 72 / figure.get_figheight()
    return 0.02 + len(lines) * line_height


def pruning_landed(rows: Sequence[Dict[str, Any]]) -> Optional[str]:
    """'where pruning landed (round 5): fc1 kept least (32.8%), output most (59.0%)': the layers
    that kept the least and the most of their weights at the last of the (aggregated) rows;
    None if the records name no layers."""
    last = rows[-1] if rows else {}
    kept = last.get("layer_remaining")
    if not kept:
        return None
    least, most = min(kept, key=kept.get), max(kept, key=kept.get)
    where = f"where pruning landed (round {last['round']}): "
    if _percent(kept[least]) == _percent(kept[most]):  # alike as printed: none stands out
        return where + f"every layer kept {_percent(kept[most])}"
    return where + f"{least} kept least ({_percent(kept[least])}), {most} most ({_percent(kept[most])})"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def plot_layers(
    experiments: Mapping[str, List[Dict[str, Any]]],
    titles: Optional[Mapping[str, str]] = None,
    branch_label: str = "winning ticket",
):
    """Weights remaining per layer vs round, one axes per experiment (name -> aggregated rows
    of one branch, `branch_label`): one line per layer, input to output from dark to light,
    and all layers together dashed. None if no experiment's rows name layers."""
    shown = {name: rows for name, rows in experiments.items() if any(r.get("layer_remaining") for r in rows)}
    if not shown:
        return None
    pyplot = _pyplot()
    figure, grid = pyplot.subplots(len(shown), 1, figsize=(7, 3.8 * len(shown)), squeeze=False)
    for axes, (name, rows) in zip(grid[:, 0], shown.items()):
        _draw_layers(axes, rows, pyplot.get_cmap("viridis"))
        title = (titles or {}).get(name)
        axes.set_title(f"{title}: " * bool(title) + "where pruning landed", loc="left", fontsize=10)
        axes.set_title(name, loc="right", fontsize=_CAPTION_FONT_SIZE, color="0.3")
        axes.set_ylabel(f"weights remaining in the {branch_label} (%)")
    figure.tight_layout()
    return figure


def _draw_layers(axes, rows, colour_map) -> None:
    """One line per layer (mean percent of its weights kept) and one for all layers, vs round;
    the legend gives each one's value at the last round."""
    import matplotlib.ticker

    layers = list(dict.fromkeys(layer for row in rows for layer in row.get("layer_remaining", {})))
    rounds = [row["round"] for row in rows]
    for layer, colour in zip(layers, colour_map(np.linspace(0.0, 0.85, len(layers)))):
        kept = [100 * row.get("layer_remaining", {}).get(layer, math.nan) for row in rows]
        # the last value in the legend tells apart layers whose lines coincide
        axes.plot(rounds, kept, color=colour, marker="o", markersize=3.5, label=f"{layer}: {kept[-1]:.1f}%")
    overall = [100 * row["weights_remaining"] for row in rows]
    axes.plot(rounds, overall, color="black", linestyle="--", linewidth=1, label=f"all: {overall[-1]:.1f}%")
    axes.set_xlabel("round")
    axes.set_ylim(0, 105)
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, title=f"layer (input to output), round {rounds[-1]}", title_fontsize=8)


def figure_png(figure) -> bytes:
    """The figure as PNG bytes (for files and TensorBoard images); closes it."""
    pyplot = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()


def format_divergence(where: Dict[str, Any]) -> str:
    """'diverged at round 3, step 1200 (loss nan)' from a callback's `diverged` record."""
    return f"diverged at round {where['round']}, step {where['step']} ({where['reason']})"


def criteria_table(tickets: Mapping[str, List[Dict[str, Any]]]) -> str:
    """Mask criteria side by side: criterion -> its ticket's aggregated rows; one line per
    criterion at its last round (test accuracy, supermask accuracy, sign stability)."""
    lines = [
        "| mask criterion | round | weights remaining | acc. @ early stop (%) | acc. @ end (%) "
        "| supermask acc. (%) | sign stability (%) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for criterion, rows in tickets.items():
        if not rows:
            continue
        last = rows[-1]
        cells = [criterion, str(last["round"]), f"{100 * last['weights_remaining']:.2f}%"]
        cells += [_cell(last[key], 100) for key in ("early_stop_accuracy", "final_accuracy")]
        cells += [_cell(last.get(key, (None, None)), 100) for key in _DECONSTRUCTION]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def criteria_verdict(tickets: Mapping[str, List[Dict[str, Any]]]) -> str:
    """One line: which criterion's ticket is most accurate at the sparsity they share (the last
    round, where the rate-based criteria all keep the same weights), and whose supermask is."""
    last = {c: rows[-1] for c, rows in tickets.items() if rows and _headline(rows[-1]) is not None}
    if not last:
        return "mask criteria: no finished round with a test accuracy, no verdict"
    shared = max(
        {round(row["weights_remaining"], 6) for row in last.values()},
        key=lambda level: sum(round(row["weights_remaining"], 6) == level for row in last.values()),
    )
    peers = {c: row for c, row in last.items() if round(row["weights_remaining"], 6) == shared}
    ranked = sorted(peers, key=lambda c: _headline(peers[c]), reverse=True)
    text = ", ".join(f"{c} {100 * _headline(peers[c]):.2f}%" for c in ranked)
    line = f"mask criteria at {100 * shared:.1f}% of weights remaining: {ranked[0]} best ({text})"
    supermasks = {c: row["supermask_accuracy"][0] for c, row in last.items() if row.get("supermask_accuracy")}
    supermasks = {c: value for c, value in supermasks.items() if value is not None}
    if supermasks:
        best = max(supermasks, key=supermasks.get)
        line += f"; best supermask (untrained): {best} {100 * supermasks[best]:.2f}%"
    others = [c for c in last if c not in peers]
    for c in others:
        line += f"; {c} at {100 * last[c]['weights_remaining']:.1f}%: {100 * _headline(last[c]):.2f}%"
    return line
