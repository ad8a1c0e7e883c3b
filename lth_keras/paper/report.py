"""Summaries of lottery runs: round tables, mean ± std over replicates, verdicts, plots.

A number from a single replicate has no std: it is None, printed without "±", left empty
in CSV rows and drawn without an error bar.

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
    from fewer than two values, mean None from none).
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
            }
        )
    return rows


def _headline(row) -> Optional[float]:
    """The accuracy a ticket is judged by: at the early-stop step, else at the end."""
    mean, _ = row["early_stop_accuracy"]
    return mean if mean is not None else row["final_accuracy"][0]


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


def markdown_table(branches: Mapping[str, List[Dict[str, Any]]], order: Sequence[str] = ()) -> str:
    """Rounds down, one column group per branch (ticket, controls; those in `order` first)."""
    names = _ordered(branches, order)
    header = ["round", "weights remaining"]
    for branch in names:
        header += [f"{branch} acc. @ early stop (%)", f"{branch} acc. @ end (%)", f"{branch} early-stop it."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    rounds = sorted({row["round"] for rows in branches.values() for row in rows})
    for index in rounds:
        rows = {b: next((r for r in branches[b] if r["round"] == index), None) for b in names}
        any_row = next(r for r in rows.values() if r)
        cells = [str(index), f"{100 * any_row['weights_remaining']:.2f}%"]
        for branch in names:
            row = rows[branch]
            if row is None:
                cells += ["", "", ""]
            else:
                cells += [
                    _cell(row["early_stop_accuracy"], 100),
                    _cell(row["final_accuracy"], 100),
                    _cell(row["early_stop_step"], 1, 0),
                ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_STATISTICS = ("early_stop_accuracy", "final_accuracy", "early_stop_step")
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
                flat[f"{key}_mean"], flat[f"{key}_std"] = row[key]
            rows.append(flat)
    return rows


def plot(
    experiments: Mapping[str, Mapping[str, List[Dict[str, Any]]]],
    metric: str,
    line_styles: Optional[Mapping[str, str]] = None,
):
    """A matplotlib figure of `metric` ('accuracy' or 'early_stop_step') vs weights remaining.

    Log x axis as in the paper; each branch drawn in its line style (`line_styles`: branch
    name -> matplotlib style, drawn in that order; others dash-dotted); one colour per
    experiment; error bars are one std over replicates (none where there is no std).
    """
    line_styles = line_styles or {}
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    colours = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    levels = set()
    for index, (name, branches) in enumerate(experiments.items()):
        for branch in _ordered(branches, list(line_styles)):
            rows = branches[branch]
            if metric == "accuracy":
                points = [(r["weights_remaining"], _headline(r), r["early_stop_accuracy"][1]) for r in rows]
                points = [(x, 100 * y, _scaled(s, 100)) for x, y, s in points if y is not None]
            else:
                points = [(r["weights_remaining"], *r["early_stop_step"]) for r in rows]
                points = [(x, y, _scaled(s)) for x, y, s in points if y is not None]
            if not points:
                continue
            x, y, err = (np.array(v, dtype=float) for v in zip(*points))
            levels.update(np.round(100 * x, 1))
            axes.errorbar(
                100 * x,
                y,
                yerr=None if np.isnan(err).all() else err,
                linestyle=line_styles.get(branch, "-."),
                marker="o",
                markersize=3,
                color=colours[index % len(colours)],
                label=f"{name} ({branch})",
                capsize=2,
            )
    axes.set_xscale("log")
    ticks = sorted(levels, reverse=True)
    ticks = ticks[:: max(1, len(ticks) // 10)]  # at most about ten labelled levels
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.invert_xaxis()
    axes.set_xlabel("percent of weights remaining")
    axes.set_ylabel("test accuracy at early stop (%)" if metric == "accuracy" else "early-stop iteration")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def _scaled(std: Optional[float], scale=1.0) -> float:
    """An error bar's half length; NaN (no bar) where there is no std."""
    return math.nan if std is None else scale * std


def figure_png(figure) -> bytes:
    """The figure as PNG bytes (for files and TensorBoard images); closes it."""
    from matplotlib import pyplot

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()


def format_divergence(where: Dict[str, Any]) -> str:
    """'diverged at round 3, step 1200 (loss nan)' from a callback's `diverged` record."""
    return f"diverged at round {where['round']}, step {where['step']} ({where['reason']})"
