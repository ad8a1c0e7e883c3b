"""Did we find a winning ticket? Tables, CSV, plots and a verdict for stored experiments.

    python -m experiments.report runs/ [more output dirs or experiment dirs...] [--out=DIR]

For each experiment: a Markdown table (weights remaining per round; for the ticket and
each control: test accuracy at the early-stop step and at the end, and the early-stop
iteration, mean ± std over replicates) and a one-line verdict, followed by a line for each
replicate whose training diverged (its finished rounds are reported as usual) and for each
replicate whose files fail verification (its rounds from the first damaged one are left
out). Writes report.csv, accuracy.png and early_stop.png (all experiments on one plot) to --out (default: the
first directory given).
"""

import csv
import io
import os
import sys
from typing import Dict, List

from absl import app, flags

from experiments import branches as branches_lib
from experiments import integrity, layout, progress
from experiments.manifest import MANIFEST_FILE
from lth_keras import storage
from lth_keras.paper import report

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


def build_report(directories: List[str], out: str) -> str:
    """Writes the CSV and plots into `out`; returns the Markdown text."""
    experiments, notes = {}, {}
    for directory in directories:
        for experiment in layout.find_experiments(directory):
            left_out = []
            branches, diverged = load_experiment(experiment, left_out), divergences(experiment)
            if branches or diverged or left_out:  # a run that diverged in round 0 has no finished round
                experiments[os.path.basename(experiment)] = branches
                notes[os.path.basename(experiment)] = diverged + left_out
    if not experiments:
        raise ValueError(f"no finished rounds found under {', '.join(directories)}")
    sections, rows = [], []
    for name, branches in experiments.items():
        styles = branches_lib.line_styles()
        verdict = report.verdict(name, branches, branches_lib.TICKET.name, branches_lib.REINIT.name)
        lines = [report.markdown_table(branches, order=list(styles)), verdict] + notes[name]
        sections.append(f"## {name}\n\n" + "\n\n".join(lines) + "\n")
        rows.extend(report.csv_rows(name, branches))
    os.makedirs(out, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    storage.save_bytes(os.path.join(out, layout.REPORT_CSV), text.getvalue().encode())
    for metric, filename in layout.PLOTS.items():
        figure = report.plot(experiments, metric, branches_lib.line_styles())
        storage.save_bytes(os.path.join(out, filename), report.figure_png(figure))
    return "\n".join(sections)


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
