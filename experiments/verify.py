"""Checks stored runs against their manifests: each damaged or missing file, what it holds, the way on.

    python -m experiments.verify runs/ [more output, experiment or run directories...]
    python -m experiments.verify --record_as_is runs/.../ticket/replicate_0

Exit codes: 0 every file verifies; 2 some file does not (each is printed), or bad arguments.
`--record_as_is` writes a new manifest for each run given, trusting its files as they
are now: for a run whose manifest was lost or that was written before manifests.
"""

import os
import sys
from typing import List

from absl import app, flags

from experiments import integrity, layout
from experiments.manifest import MANIFEST_FILE, Manifest

flags.DEFINE_bool(
    "record_as_is", False, "Write a new manifest for each run given, trusting its files as they are now."
)
FLAGS = flags.FLAGS


def find_runs(directory: str) -> List[str]:
    """The run directories (replicates of a branch) at or below `directory`."""
    if os.path.basename(os.path.normpath(directory)).startswith("replicate_"):
        return [directory]
    runs = []
    for experiment in layout.find_experiments(directory):
        for branch in sorted(os.listdir(experiment)):
            path = layout.branch_dir(experiment, branch)
            if os.path.isdir(path):
                runs.extend(layout.replicate_dirs(path))
    return runs


def verify(directories: List[str]) -> int:
    """Prints what fails in each run below `directories`; returns how many files fail."""
    runs = [run for directory in directories for run in find_runs(directory)]
    if not runs:
        raise ValueError(f"no runs found under {', '.join(directories)}")
    failed = 0
    for run in runs:
        found = integrity.problems(run)
        failed += len(found)
        for problem in found:
            print(problem.describe())
        if any(os.path.basename(p.path) == MANIFEST_FILE for p in found):
            continue
        manifest = Manifest.load(run)
        if not found:
            print(f"ok: {run} ({len(manifest.entries)} files verified)")
        for relative_path in manifest.unrecorded():
            print(
                f"note: {os.path.join(run, relative_path)} is not in the manifest (written just before "
                "the run was stopped, or put there by hand); runs read it as it is"
            )
    print(
        f"{len(runs)} runs checked, {failed} files fail"
        if failed
        else f"{len(runs)} runs checked, all verify"
    )
    return failed


def main(argv):
    directories = argv[1:]
    if not directories:
        raise app.UsageError("give one or more output, experiment or run directories")
    try:
        if FLAGS.record_as_is:
            for run in (run for directory in directories for run in find_runs(directory)):
                print(f"recorded {integrity.record_as_is(run)} files of {run} as they are")
            return
        if verify(directories):
            sys.exit(2)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
