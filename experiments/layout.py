"""The one module that knows where an experiment's files go.

    <output_dir>/<model>_<dataset>-<hash>/config.json
    <output_dir>/<model>_<dataset>-<hash>/<branch>.lock     pid and host of the run writing <branch>
    <output_dir>/<model>_<dataset>-<hash>/<branch>/replicate_<i>/
        manifest.json                       size and digest of each file below (experiments/manifest.py)
        theta_0.npz, theta_k.npz            the weights rounds rewind to (ticket branch)
        tensorboard/                        per-round scalars and plots, HParams
        round_<n>/                          a ticket (lth_keras/tickets.py): masks.npz, theta_0.npz
                                            (theta_k.npz) and rounds.json, written when the round ends;
                                            rounds.json, written last, marks the round done
        round_<n>/checkpoint/               model + optimizer + progress, while needed to resume
        round_<n>/diverged.json             where training diverged (the round never finished)
    <output_dir>/<model>_<dataset>-<hash>/removal.json      the ticket-removal study's target round
                                            (experiments/removal.py; its tickets: ticket, removal_<k>)
    <output_dir>/report.csv, accuracy.png, early_stop.png   written by experiments.report

A ticket transfer (experiments/transfer.py) is an experiment of its own,
<output_dir>/<source experiment>_to_<dataset>-<hash>/, with the same branches and files.

<branch> is a branch's name: `ticket` for the pruning run, or a control's (experiments/branches.py). <hash> is
`config.config_hash`: the settings that differ from the defaults.
"""

import glob
import os
import re

from experiments import config as config_lib
from lth_keras import tickets

CONFIG_FILE = "config.json"
REMOVAL_FILE = "removal.json"
DIVERGED_FILE = "diverged.json"
LOCK_SUFFIX = ".lock"
REPORT_CSV = "report.csv"
PLOTS = {"accuracy": "accuracy.png", "early_stop_step": "early_stop.png"}


def experiment_name(config) -> str:
    """`<model>_<dataset>-<hash>`; a ticket transfer's (experiments/transfer.py) names its source:
    `<source experiment>_to_<dataset>-<hash>`."""
    source = getattr(config, "source_experiment", "")
    stem = f"{source}_to_{config.dataset}" if source else f"{config.model}_{config.dataset}"
    return f"{stem}-{config_lib.config_hash(config)}"


def experiment_dir(config) -> str:
    return os.path.join(config.output_dir, experiment_name(config))


def config_file(experiment: str) -> str:
    return os.path.join(experiment, CONFIG_FILE)


def removal_file(experiment: str) -> str:
    """The ticket-removal study's settings in an experiment (experiments/removal_study.py)."""
    return os.path.join(experiment, REMOVAL_FILE)


def branch_dir(experiment: str, branch: str) -> str:
    """The directory of the branch named `branch` (experiments/branches.py names them)."""
    return os.path.join(experiment, branch)


def lock_file(experiment: str, branch: str) -> str:
    """The lock a run holds on its branch while it writes there."""
    return branch_dir(experiment, branch) + LOCK_SUFFIX


def lock_files(experiment: str):
    """Every branch's lock file in an experiment directory."""
    return sorted(glob.glob(os.path.join(experiment, "*" + LOCK_SUFFIX)))


def run_dir(experiment: str, branch: str, replicate: int) -> str:
    return os.path.join(branch_dir(experiment, branch), f"replicate_{replicate}")


def round_dir(run: str, round_index: int) -> str:
    return os.path.join(run, f"round_{round_index}")


def masks_file(round_directory: str) -> str:
    return tickets.masks_file(round_directory)


def record_file(round_directory: str) -> str:
    """The round's records (its own last); written last, so its presence marks the round done."""
    return tickets.rounds_file(round_directory)


def diverged_file(round_directory: str) -> str:
    return os.path.join(round_directory, DIVERGED_FILE)


def theta_file(directory: str, name: str) -> str:
    """θ `name` ('theta_0' or 'theta_k') of a run, or of one of its rounds."""
    return tickets.theta_file(directory, name)


def checkpoint_dir(round_directory: str) -> str:
    return os.path.join(round_directory, "checkpoint")


def checkpoint_index_file(checkpoint_directory: str) -> str:
    """TensorFlow's file naming the newest checkpoint of a directory."""
    return os.path.join(checkpoint_directory, "checkpoint")


def state_file(checkpoint_directory: str, number: int) -> str:
    """The callback's progress saved beside checkpoint number `number`."""
    return os.path.join(checkpoint_directory, f"state-{number}.json")


def tensorboard_dir(run: str) -> str:
    return os.path.join(run, "tensorboard")


def round_indices(run: str):
    """Indices of the round directories in a run, ascending."""
    found = []
    for path in glob.glob(os.path.join(run, "round_*")):
        match = re.fullmatch(r"round_(\d+)", os.path.basename(path))
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def replicate_dirs(branch: str):
    """The replicate directories of a branch, by replicate number."""
    found = []
    for path in glob.glob(os.path.join(branch, "replicate_*")):
        match = re.fullmatch(r"replicate_(\d+)", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def find_experiments(root: str):
    """Experiment directories (those holding a config.json) at or below `root`."""
    if os.path.exists(config_file(root)):
        return [root]
    return sorted(
        os.path.dirname(p) for p in glob.glob(os.path.join(root, "**", CONFIG_FILE), recursive=True)
    )
