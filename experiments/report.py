"""Did we find a winning ticket? Tables, CSV, plots and a verdict for stored experiments.

    python -m experiments.report runs/ [more output dirs or experiment dirs...] [--out=DIR]

For each experiment: how many replicates each branch has, a Markdown table (weights
remaining per round; for the ticket and each control: test accuracy at the early-stop
step and at the end, and the early-stop iteration, mean ± std over replicates, the mean
alone from one), a one-line verdict and a line saying which layer of the ticket kept the
most and which the least of its weights at its last round, followed by a line for each
replicate whose training diverged (its finished rounds are reported as usual) and for
each replicate whose files fail verification (its rounds from the first damaged one are
left out). Writes report.csv, accuracy.png and early_stop.png (all experiments on one
plot: a colour per branch, the dense network as a reference line, ±1 std bands) and
layers.png (the ticket's weights remaining per layer vs round, one panel per experiment)
to --out (default: the first directory given) and ends with the list of files written.
An experiment holding a ticket-removal study (experiments/removal.py) also gets the study's
table and verdict, and removal.png (accuracy vs tickets removed, and the tickets' overlaps).
A ticket transfer (experiments/transfer.py) also gets a line saying whether the ticket
keeps its advantage over the controls on the target dataset.

Experiments are told apart by their directory: each is labelled by the shortest end of
its path that no other ends with (`lenet_mnist-1a2b`, or `a/lenet_mnist-1a2b` and
`b/lenet_mnist-1a2b` for the same experiment run under runs/a and runs/b).

When the experiments given were pruned by more than one mask criterion (--mask_criterion),
a last section puts their tickets side by side: a line per experiment at its last round
(accuracy, supermask accuracy, sign stability) and a verdict naming the best criterion.
"""

import csv
import io
import os
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence

from absl import app, flags

from experiments import branches as branches_lib
from experiments import integrity, layout, progress, removal_study
from experiments.manifest import MANIFEST_FILE
from lth_keras import storage
from lth_keras.criteria import CRITERIA
from lth_keras.paper import report

LAYERS_PLOT = "layers.png"  # weights remaining per layer vs round (the metric plots: layout.PLOTS)
REMOVAL_PLOT = "removal.png"  # a ticket-removal study's accuracy and overlaps

flags.DEFINE_string("out", None, "Where report.csv and the plots go (default: the first directory given).")
FLAGS = flags.FLAGS


def verified_rounds(run: str, notes: List[str]) -> List[dict]:
    """The run's finished rounds before the first whose files fail verification; a note says
    what was left out and why."""
    found = integrity.problems(run)
    label = os.path.relpath(run, os.path.dirname(os.path.dirname(run))).replace(os.sep, " ")
    if any(os.path.basename(p.path) == MANIFEST_FILE for p in found):
        notes.append(f"{label} left out: its files cannot be verified ({found[0].what} manifest)")
        return []
    bad = integrity.damaged_rounds(run, found)
    rounds = progress.finished_rounds(run, stop_before=bad[0] if bad else None)
    if found:
        left_out = f"rounds {bad[0]} on left out" if bad else "its rounds are reported"
        notes.append(
            f"{label}: {len(found)} files fail verification, {left_out} (python -m experiments.verify {run})"
        )
    return rounds


def load_experiment(experiment: str, notes: List[str]) -> Dict[str, List[dict]]:
    """Branch name -> rows aggregated over that branch's replicates (verified finished rounds only)."""
    branches = {}
    for branch in sorted(os.listdir(experiment)):
        path = os.path.join(experiment, branch)
        if not os.path.isdir(path):
            continue
        replicates = [verified_rounds(run, notes) for run in layout.replicate_dirs(path)]
        replicates = [rounds for rounds in replicates if rounds]
        if replicates:
            branches[branch] = report.aggregate(replicates)
    return branches


def divergences(experiment: str) -> List[str]:
    """'<branch> replicate <i> diverged at round r, step s (...)' for each replicate that diverged."""
    lines = []
    for branch in sorted(os.listdir(experiment)):
        for run in layout.replicate_dirs(os.path.join(experiment, branch)):
            where = progress.divergence(run)
            if where is not None:
                lines.append(
                    f"{branch} {os.path.basename(run).replace('_', ' ')} {report.format_divergence(where)}"
                )
    return lines


class Experiment(NamedTuple):
    directory: str
    branches: Dict[str, List[dict]]  # branch name -> aggregated rows
    notes: List[str]  # diverged replicates, rounds left out
    title: str = ""  # 'LeNet-300-100 on Fashion-MNIST'; empty if config.json cannot be read
    criterion: str = ""  # its --mask_criterion; empty if config.json cannot be read


def experiment_dirs(directories: Sequence[str]) -> List[str]:
    """The experiment directories at or below `directories`, each once (a directory given
    together with its parent is one experiment), in the order given."""
    seen, found = set(), []
    for directory in directories:
        for experiment in layout.find_experiments(directory):
            if os.path.realpath(experiment) not in seen:
                seen.add(os.path.realpath(experiment))
                found.append(experiment)
    return found


def experiment_labels(directories: Sequence[str]) -> List[str]:
    """For each directory, the shortest end of its path that no other directory's path ends
    with: the basename unless two experiments share it (distinct paths, not repeated)."""
    paths = [os.path.abspath(d).strip(os.sep).split(os.sep) for d in directories]

    def label(index: int) -> str:
        parts = paths[index]
        others = paths[:index] + paths[index + 1 :]
        length = next(
            (n for n in range(1, len(parts)) if all(o[-n:] != parts[-n:] for o in others)), len(parts)
        )
        return os.path.join(*parts[-length:])

    return [label(i) for i in range(len(paths))]


def title(directory: str) -> str:
    """'LeNet-300-100 on Fashion-MNIST', from the experiment's config.json; '' if unreadable
    (the report's other parts do not need it)."""
    try:
        stored = storage.load_json(layout.config_file(directory))
        return report.experiment_title(stored["model"], stored["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def mask_criterion(directory: str) -> str:
    """The experiment's --mask_criterion from its config.json (large_final if it predates the
    flag); '' if unreadable."""
    try:
        return storage.load_json(layout.config_file(directory)).get("mask_criterion", "large_final")
    except (OSError, ValueError, AttributeError):
        return ""


def criteria_section(experiments: Dict[str, Experiment]) -> Optional[str]:
    """The tickets of experiments pruned by different mask criteria side by side, or None."""
    ticket = branches_lib.TICKET.name
    found = {
        label: e for label, e in experiments.items() if e.criterion in CRITERIA and e.branches.get(ticket)
    }
    if len({e.criterion for e in found.values()}) < 2:
        return None
    criteria = [e.criterion for e in found.values()]

    def name(label, e):  # the criterion, and the experiment when two share a criterion
        return e.criterion if criteria.count(e.criterion) == 1 else f"{e.criterion} ({label})"

    ordered = sorted(found.items(), key=lambda item: CRITERIA.index(item[1].criterion))
    tickets = {name(label, e): e.branches[ticket] for label, e in ordered}
    return (
        "## Mask criteria\n\n"
        + report.criteria_table(tickets)
        + "\n\n"
        + report.criteria_verdict(tickets)
        + "\n"
    )


def load(directory: str) -> Optional[Experiment]:
    """The experiment's branches and notes; None if it has nothing to report."""
    left_out = []
    branches, diverged = load_experiment(directory, left_out), divergences(directory)
    if branches or diverged or left_out:  # a run that diverged in round 0 has no finished round
        return Experiment(
            directory, branches, diverged + left_out, title(directory), mask_criterion(directory)
        )
    return None


def transfer_verdict(label: str, experiment: Experiment) -> List[str]:
    """A ticket transfer's line (experiments/transfer.py): does the ticket keep its advantage over
    the controls on the target? Empty for any other experiment."""
    try:
        source = storage.load_json(layout.config_file(experiment.directory)).get("source_experiment")
    except (OSError, ValueError, AttributeError):
        return []
    if not source:
        return []
    controls = {b.name: b.label for b in branches_lib.BRANCHES.values() if b.retrain}
    return [report.advantage_verdict(label, experiment.branches, controls)]


def section(label: str, experiment: Experiment) -> str:
    """The experiment's Markdown: heading, replicate counts, table, verdict and notes."""
    order = list(branches_lib.line_styles())
    branches = experiment.branches
    verdict = report.verdict(label, branches, branches_lib.TICKET.name, branches_lib.REINIT.name)
    table = report.markdown_table(branches, order=order)
    lines = ([report.replicates_line(branches, order)] if branches else []) + [table, verdict]
    landed = report.pruning_landed(branches.get(branches_lib.TICKET.name, []))
    lines += [landed] if landed else []
    lines += transfer_verdict(label, experiment)
    removals = removal_study.summary(experiment.directory)
    lines += [removal_study.text(label, removals)] if removals else []
    return f"## {label}\n\n" + "\n\n".join(lines + experiment.notes) + "\n"


def write_csv(experiments: Dict[str, Experiment], path: str) -> None:
    """One row per experiment, branch and round; `directory` is the experiment's path."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=report.CSV_COLUMNS + ["directory"])
    writer.writeheader()
    for label, experiment in experiments.items():
        for row in report.csv_rows(label, experiment.branches):
            writer.writerow({**row, "directory": experiment.directory})
    storage.save_bytes(path, text.getvalue().encode())


def figures(experiments: Dict[str, Experiment]) -> Dict[str, object]:
    """File name -> matplotlib figure: each metric's plot of every branch, and where the
    ticket's pruning landed per layer (when the records name layers) and the removal studies
    (when there are any)."""
    branches = {label: experiment.branches for label, experiment in experiments.items()}
    titles = {label: experiment.title for label, experiment in experiments.items()}
    labels = {branch.name: branch.label or branch.name for branch in branches_lib.BRANCHES.values()}
    ticket = branches_lib.TICKET
    drawn = {
        filename: report.plot(branches, metric, branches_lib.line_styles(), labels, titles, ticket.name)
        for metric, filename in layout.PLOTS.items()
    }
    tickets = {label: rows.get(ticket.name, []) for label, rows in branches.items()}
    drawn[LAYERS_PLOT] = report.plot_layers(tickets, titles, ticket.label or ticket.name)
    studies = {
        label: removal_study.summary(experiment.directory) for label, experiment in experiments.items()
    }
    drawn[REMOVAL_PLOT] = removal_study.plot(studies, titles)
    return {filename: figure for filename, figure in drawn.items() if figure is not None}


def write_files(experiments: Dict[str, Experiment], out: str) -> List[str]:
    """Writes the CSV and the plots into `out`; returns their paths."""
    os.makedirs(out, exist_ok=True)
    written = [os.path.join(out, layout.REPORT_CSV)]
    write_csv(experiments, written[0])
    for filename, figure in figures(experiments).items():
        written.append(os.path.join(out, filename))
        storage.save_bytes(written[-1], report.figure_png(figure))
    return written


def build_report(directories: List[str], out: str) -> str:
    """Writes the CSV and plots into `out`; returns the Markdown text, ending with the files written."""
    found = [e for e in map(load, experiment_dirs(directories)) if e is not None]
    if not found:
        raise ValueError(f"no finished rounds found under {', '.join(directories)}")
    experiments = dict(zip(experiment_labels([e.directory for e in found]), found))
    sections = [section(label, experiment) for label, experiment in experiments.items()]
    sections += [text for text in [criteria_section(experiments)] if text]
    written = write_files(experiments, out)
    return "\n".join(sections) + "\nFiles written:\n" + "".join(f"- {path}\n" for path in written)


def main(argv):
    directories = argv[1:]
    if not directories:
        raise app.UsageError("give one or more output or experiment directories")
    try:
        print(build_report(directories, FLAGS.out or directories[0]))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
