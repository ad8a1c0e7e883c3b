"""The shared runner behind every suite: data -> model -> lottery callback -> files.

`train_and_evaluate(config)` is what the suite scripts, the tests and notebooks call;
`run_command(config)` calls it for a command line that experiments/cli.py has parsed and
checked, and says at the end where the results are. Re-running the same
command continues where the last run stopped: finished rounds are skipped, an unfinished
round resumes from its last checkpoint.

Exit codes of `main`: 0 done; 2 nothing trained or usable files (a bad flag, a stored
file that cannot be used, another run holding the lock, a diverged run re-run); 1 the
disk filled up (free space, re-run to resume); 3 training diverged (NaN or inf); 130 or
143 stopped by SIGINT or SIGTERM at a checkpoint (re-run to resume).
"""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Any, Dict

import tensorflow as tf

from experiments import backend, branches, components, integrity, layout, lock, progress
from experiments import config as config_lib
from lth_keras import storage
from lth_keras.paper import datasets, models, report

resolve = components.resolve


def hparams_of(config) -> Dict[str, Any]:
    """The config as TensorBoard HParams values (bool, int, float or str)."""
    result = {}
    for key, value in dataclasses.asdict(config).items():
        result[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return result


def _overwrite(branch, experiment: str) -> None:
    """--overwrite: deletes the branch, or for the ticket the whole experiment but for the locks.

    Refuses while another branch of the experiment is being run (its lock is held).
    """
    own_lock = layout.lock_file(experiment, branch.name)
    if branch is not branches.TICKET:
        targets = [layout.branch_dir(experiment, branch.name)]
    else:
        for path in layout.lock_files(experiment):
            owner = lock.live_owner(path) if path != own_lock else None
            if owner is not None:
                raise lock.LockedError(
                    f"--overwrite would delete {experiment}, but another run ({lock.describe(owner)}) "
                    f"holds {path}; wait for it to finish (or stop it)"
                )
        names = os.listdir(experiment) if os.path.isdir(experiment) else []
        targets = [os.path.join(experiment, n) for n in names if os.path.join(experiment, n) != own_lock]
    targets = [t for t in targets if os.path.exists(t)]
    if targets:
        print(f"--overwrite: deleting {', '.join(targets)}")
    for target in targets:
        if os.path.isdir(target):
            shutil.rmtree(target)
        else:
            os.remove(target)


def check_stored_config(config, experiment: str) -> None:
    """Refuses a stored experiment whose settings differ from this command's (unless --overwrite)."""
    path = layout.config_file(experiment)
    if config.overwrite or not os.path.exists(path):
        return
    with progress.reading(path, progress.START_ANEW):
        stored = storage.load_json(path)
        if not isinstance(stored, dict):
            raise ValueError("it does not hold a configuration")
    given = config_lib.result_settings(config)
    # A setting added since the experiment was stored (e.g. --mask_criterion) computed its default then.
    defaults = {
        k: v for k, v in config_lib.result_settings(config_lib.ExperimentConfig()).items() if k in given
    }
    stored_settings = {**defaults, **{k: v for k, v in stored.items() if k not in config_lib.RUN_FIELDS}}
    differ = sorted(k for k in set(stored_settings) | set(given) if stored_settings.get(k) != given.get(k))
    if differ:
        details = ", ".join(f"{k}: stored {stored_settings.get(k)!r}, given {given.get(k)!r}" for k in differ)
        raise ValueError(
            f"{experiment} holds an experiment with other settings ({details}); "
            "use another --output_dir, or --overwrite to replace it"
        )


def check_before_writing(config, branch, experiment: str, splits) -> Dict[int, list]:
    """Every check that can refuse the command, reading only; returns the damaged files each
    replicate can rebuild. Raises naming what cannot be used."""
    check_stored_config(config, experiment)
    model = components.build_model(config, splits, config.seed)  # to try stored weights on
    return {r: branch.preflight(branch, config, experiment, r, model) for r in range(config.replicates)}


def prepare_experiment(config, branch, experiment: str) -> None:
    """Clears `branch` with --overwrite, and stores this command's config when it changed."""
    if config.overwrite:
        _overwrite(branch, experiment)
    path = layout.config_file(experiment)
    settings = json.loads(json.dumps(dataclasses.asdict(config)))  # as JSON reads it back
    try:
        unchanged = storage.load_json(path) == settings
    except (FileNotFoundError, ValueError):  # none yet, or a control's --overwrite over a bad one
        unchanged = False
    if not unchanged:
        storage.save_json(path, settings)


def train_and_evaluate(
    config: config_lib.ExperimentConfig, suite_dataset: str = "", branch=None
) -> Dict[str, Any]:
    """Runs (or resumes) every replicate of an experiment; returns {replicate: [round records]}.

    `branch`: the branch to run (default: the one --control selects); a study passes its own.

    Whatever refuses the command (settings, a lock, a stored file, the data) does so before
    anything is written.
    """
    config_lib.validate(config, models=models.MODELS, datasets=datasets.DATASETS + ("synthetic",))
    branch = branch or branches.selected(config.control)
    branch.check(config)
    config = resolve(config)
    if config.deterministic:
        backend.make_deterministic(config)
    splits = components.load_data(config, suite_dataset or config.dataset)
    if config.smoke:
        splits = components.shrink(splits)
    strategy = components.make_strategy(config)
    experiment = layout.experiment_dir(config)
    chief = components.is_chief(strategy)
    # One process per branch; other workers of a cluster write elsewhere and take no lock.
    with lock.RunLock(layout.lock_file(experiment, branch.name)) if chief else contextlib.nullcontext():
        rebuilds = {}
        if chief:
            rebuilds = check_before_writing(config, branch, experiment, splits)
            prepare_experiment(config, branch, experiment)
        return _run_replicates(config, branch, splits, strategy, experiment, chief, rebuilds)


def _run_replicates(config, branch, splits, strategy, experiment, chief, rebuilds) -> Dict[str, Any]:
    """Every replicate of `branch`, each first rebuilding the damaged files it can
    (`rebuilds`: replicate -> integrity problems); returns {replicate: [round records]}."""
    # Other workers of a cluster train in lockstep, read the chief's files and write elsewhere.
    write_root = experiment if chief else tempfile.mkdtemp(prefix="lth_keras_worker_")
    results = {}
    for replicate in range(config.replicates):
        seed = config.seed + replicate
        backend.set_random_seed(config, seed)
        dirs = {
            "read": layout.run_dir(experiment, branch.name, replicate),
            "write": layout.run_dir(write_root, branch.name, replicate),
        }
        if rebuilds.get(replicate):
            with strategy.scope():
                build = lambda: components.build_model(config, splits, seed)  # noqa: E731
                integrity.rebuild(dirs["read"], rebuilds[replicate], build)
        with tf.summary.create_file_writer(layout.tensorboard_dir(dirs["write"])).as_default():
            from tensorboard.plugins.hparams import api as hparams_api

            hparams_api.hparams({**hparams_of(config), "replicate": replicate})
        results[replicate] = branch.train(config, splits, strategy, dirs, experiment, replicate, seed)
        print(f"{layout.experiment_name(config)} {branch.name} replicate {replicate}:")
        print(report.format_rounds_table(results[replicate], accuracy_key="test_accuracy"))
    return results


def main(defaults: config_lib.ExperimentConfig) -> None:
    """A suite's command line (experiments/cli.py parses and checks it, then calls `run_command`)."""
    from experiments import cli  # cli imports this module (and TensorFlow) only once the flags are good

    cli.main(defaults)


def run_command(config: config_lib.ExperimentConfig, suite_dataset: str, train=None) -> None:
    """Runs a command line's config; exits with the codes the module docstring lists. A run
    that finishes ends with where its results are and the commands that show them.

    `train(config, suite_dataset=...)`: what runs it (default `train_and_evaluate`; a study
    such as experiments/removal.py passes its own)."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _stop_at_next_checkpoint)
    if config.smoke:
        print(components.smoke_summary(config))
    try:
        (train or train_and_evaluate)(config, suite_dataset=suite_dataset)
    except (ValueError, FileNotFoundError) as e:
        _exit(2, f"error: {e}")
    except datasets.DatasetUnavailableError as e:
        _exit(2, f"error: {e}\nOr try the scripts on generated data: --dataset=synthetic.")
    except storage.DiskFullError as e:
        _exit(1, f"error: {e}; free space and re-run the same command to resume")
    except progress.TrainingDiverged as e:
        _exit(3, f"error: {e}")
    except progress.Interrupted as e:
        name = signal.Signals(e.signal_number).name
        _exit(
            128 + e.signal_number,
            f"stopped by {name} after a checkpoint; re-run the same command to resume",
        )
    print(next_steps(layout.experiment_dir(resolve(config))))


def next_steps(experiment: str) -> str:
    """The lines that end a finished run: its directory and the commands that show it."""
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    tensorboard = _as_typed(tensorboard) if os.path.exists(tensorboard) else "tensorboard"
    return (
        f"results: {experiment}\n"
        f"  tables, verdict, plots: {_as_typed(sys.executable)} -m experiments.report {experiment}\n"
        f"  curves: {tensorboard} --logdir {experiment}"
    )


def _as_typed(path: str) -> str:
    """`path` as one types it here: relative inside the working directory (.venv/bin/python)."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def _stop_at_next_checkpoint(signal_number, frame) -> None:
    """First SIGINT/SIGTERM: checkpoint and stop at the next epoch end. A second one acts at once."""
    signal.signal(
        signal_number, signal.SIG_DFL if signal_number != signal.SIGINT else signal.default_int_handler
    )
    progress.STOP.request(signal_number)
    name = signal.Signals(signal_number).name
    print(
        f"{name}: stopping at the next checkpoint (send it again to stop at once)",
        file=sys.stderr,
        flush=True,
    )


def _exit(code: int, message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)
