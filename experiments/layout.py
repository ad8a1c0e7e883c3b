"""The one module that knows where an experiment's files go.

    <output_dir>/<model>_<dataset>/config.json
    <output_dir>/<model>_<dataset>/<branch>/replicate_<i>/tensorboard/
    <output_dir>/<model>_<dataset>/<branch>/replicate_<i>/round_<n>/{masks.npz,metrics.json}
    <output_dir>/<model>_<dataset>/<branch>/replicate_<i>/ticket/{masks,theta_0,theta_k}.npz, rounds.json

<branch> is `ticket` for the pruning run, or the control's name.
"""

import os

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


def experiment_dir(config) -> str:
    return os.path.join(config.output_dir, f"{config.model}_{config.dataset}")


def config_file(experiment: str) -> str:
    return os.path.join(experiment, CONFIG_FILE)


def run_dir(experiment: str, control: str, replicate: int) -> str:
    branch = "ticket" if control == "none" else control
    return os.path.join(experiment, branch, f"replicate_{replicate}")


def round_dir(run: str, round_index: int) -> str:
    return os.path.join(run, f"round_{round_index}")


def metrics_file(round_directory: str) -> str:
    return os.path.join(round_directory, METRICS_FILE)


def tensorboard_dir(run: str) -> str:
    return os.path.join(run, "tensorboard")


def ticket_dir(run: str) -> str:
    return os.path.join(run, "ticket")
