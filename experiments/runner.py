"""The shared runner behind every suite: data -> model -> lottery callback -> files.

`train_and_evaluate(config)` is what the suite scripts, the tests and notebooks call;
`main(defaults)` only turns flags into a config and calls it. Re-running the same
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
from typing import Any, Dict, List

import tensorflow as tf
from absl import app, flags, logging

import lth_keras
from experiments import components, layout, lock, progress
from experiments import config as config_lib
from lth_keras import pipelines, storage
from lth_keras.paper import datasets, models, report

keras = lth_keras.keras
resolve = components.resolve


def hparams_of(config) -> Dict[str, Any]:
    """The config as TensorBoard HParams values (bool, int, float or str)."""
    result = {}
    for key, value in dataclasses.asdict(config).items():
        result[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return result


def _refuse_if_diverged(run: str) -> None:
    """A run that diverged would diverge again: re-running it is refused, not retrained."""
    where = progress.divergence(run)
    if where is not None:
        raise ValueError(progress.diverged_message(run, where))


def _train(config, splits, model, callback, rounds, point, theta_dir=None):
    """Fits `rounds` rounds with `callback`, first restoring checkpoint `point` if given.

    `theta_dir` holds the θ₀/θ_k a resumed ticket rewinds to (None for a control).
    Raises TrainingDiverged or Interrupted when training stopped early.
    """
    epochs_per_round = config.iterations // config.eval_every
    initial_epoch = 0
    if point is not None:
        initial_epoch = progress.restore(model, callback, point, theta_dir)
        print(f"resuming {point['round_dir']} at {progress.describe(point['state'])}")
    callback.set_initial_epoch(initial_epoch)
    train = components.training_batches(config, splits, model, start_step=initial_epoch * config.eval_every)
    validation = pipelines.make_pipeline(*splits.validation, 1000, training=False)
    callback.test_data = pipelines.make_pipeline(*splits.test, 1000, training=False)
    model.fit(
        train,
        steps_per_epoch=config.eval_every,
        initial_epoch=initial_epoch,
        epochs=rounds * epochs_per_round,
        validation_data=validation,
        callbacks=[callback],
        verbose=0,
    )
    if callback.diverged:
        raise progress.TrainingDiverged(progress.diverged_message(callback.run_dir, callback.diverged))
    if progress.STOP.requested:
        raise progress.Interrupted(progress.STOP.signal_number)
    return callback


def run_ticket(config, splits, strategy, dirs, seed) -> List[dict]:
    """Iterative (or one-shot) magnitude pruning: prune_iters + 1 rounds (2 when one-shot)."""
    total = 2 if config.one_shot else config.prune_iters + 1
    done = progress.finished_rounds(dirs["read"])
    if len(done) >= total:
        return done[:total]
    _refuse_if_diverged(dirs["read"])
    with strategy.scope():
        model = components.build_model(config, splits, seed)
        components.compile_model(model, config)
    print(f"{config.model}: {lth_keras.get_masks(model).size:,} prunable weights")
    callback = progress.RoundLogger(
        dirs["write"],
        checkpoint_every_epochs=config.checkpoint_every // config.eval_every,
        epochs_per_round=config.iterations // config.eval_every,
        rewind_step=config.rewind_step,
        one_shot=config.one_shot,
        keep_theta_0=False,  # saved to theta_0.npz before θ_k is captured
        verbose=1,
    )
    _train(config, splits, model, callback, total, progress.resume_point(dirs["read"]), dirs["read"])
    return progress.finished_rounds(dirs["write"])[:total]


def run_control(config, splits, strategy, dirs, ticket_dir, seed) -> List[dict]:
    """Retrains each of the ticket's saved masks under a control, one round per level."""
    ticket_rounds = progress.finished_rounds(ticket_dir)
    if not ticket_rounds:
        raise FileNotFoundError(
            f"--control={config.control} retrains the ticket's saved masks, but {ticket_dir} has no "
            "finished round: run the same command with --control=none first"
        )
    theta_path = layout.theta_file(ticket_dir, "theta_0")
    with progress.reading(theta_path, progress.START_ANEW):
        theta_0 = lth_keras.WeightSnapshot.load(theta_path)
    done = {r["round"] for r in progress.finished_rounds(dirs["read"])}
    _refuse_if_diverged(dirs["read"])
    for record in ticket_rounds[: config.prune_iters + 1]:
        index = record["round"]
        if index in done:
            continue
        round_directory = layout.round_dir(ticket_dir, index)
        control_seed = seed + 1 + index
        with strategy.scope():
            model = components.build_model(config, splits, seed)
            with progress.reading(layout.masks_file(round_directory), progress.redo_from(round_directory)):
                masks = lth_keras.Masks.load(round_directory)
                lth_keras.set_masks(model, masks)
            if config.control == "reinit":
                lth_keras.reinit(model, seed=control_seed)
            else:
                with progress.reading(theta_path, progress.START_ANEW):
                    lth_keras.random_prune(model, theta_0, seed=control_seed, masks=masks)
            components.compile_model(model, config)
        callback = progress.RoundLogger(
            dirs["write"],
            checkpoint_every_epochs=config.checkpoint_every // config.eval_every,
            first_round=index,
            is_ticket=False,
            epochs_per_round=config.iterations // config.eval_every,
            verbose=1,
        )
        _train(config, splits, model, callback, 1, progress.resume_point(dirs["read"], only_round=index))
    return progress.finished_rounds(dirs["write"])[: config.prune_iters + 1]


def _overwrite(config, experiment: str) -> None:
    """--overwrite: deletes the branch, or for the ticket the whole experiment but for the locks.

    Refuses while another branch of the experiment is being run (its lock is held).
    """
    own_lock = layout.lock_file(experiment, config.control)
    if config.control != "none":
        targets = [layout.branch_dir(experiment, config.control)]
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


def prepare_experiment(config, experiment: str) -> None:
    """Checks a stored experiment matches this command (or clears it with --overwrite)."""
    path = layout.config_file(experiment)
    if config.overwrite:
        _overwrite(config, experiment)
    if os.path.exists(path):
        with progress.reading(path, progress.START_ANEW):
            stored = storage.load_json(path)
            if not isinstance(stored, dict):
                raise ValueError("it does not hold a configuration")
        stored_settings = {k: v for k, v in stored.items() if k not in config_lib.NOT_IN_NAME}
        given = config_lib.result_settings(config)
        differ = sorted(
            k for k in set(stored_settings) | set(given) if stored_settings.get(k) != given.get(k)
        )
        if differ:
            details = ", ".join(
                f"{k}: stored {stored_settings.get(k)!r}, given {given.get(k)!r}" for k in differ
            )
            raise ValueError(
                f"{experiment} holds an experiment with other settings ({details}); "
                "use another --output_dir, or --overwrite to replace it"
            )
    storage.save_json(path, dataclasses.asdict(config))


def train_and_evaluate(config: config_lib.ExperimentConfig, suite_dataset: str = "") -> Dict[str, Any]:
    """Runs (or resumes) every replicate of an experiment; returns {replicate: [round records]}."""
    config_lib.validate(config, models=models.MODELS, datasets=datasets.DATASETS + ("synthetic",))
    config = resolve(config)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    splits = components.load_data(config, suite_dataset or config.dataset)
    if config.smoke:
        splits = components.shrink(splits)
    strategy = components.make_strategy(config)
    experiment = layout.experiment_dir(config)
    chief = components.is_chief(strategy)
    # One process per branch; other workers of a cluster write elsewhere and take no lock.
    with lock.RunLock(layout.lock_file(experiment, config.control)) if chief else contextlib.nullcontext():
        if chief:
            prepare_experiment(config, experiment)
        return _run_replicates(config, splits, strategy, experiment, chief)


def _run_replicates(config, splits, strategy, experiment: str, chief: bool) -> Dict[str, Any]:
    """Every replicate of the branch `config.control` names; returns {replicate: [round records]}."""
    # Other workers of a cluster train in lockstep, read the chief's files and write elsewhere.
    write_root = experiment if chief else tempfile.mkdtemp(prefix="lth_keras_worker_")
    results = {}
    for replicate in range(config.replicates):
        seed = config.seed + replicate
        keras.utils.set_random_seed(seed)
        dirs = {
            "read": layout.run_dir(experiment, config.control, replicate),
            "write": layout.run_dir(write_root, config.control, replicate),
        }
        with tf.summary.create_file_writer(layout.tensorboard_dir(dirs["write"])).as_default():
            from tensorboard.plugins.hparams import api as hparams_api

            hparams_api.hparams({**hparams_of(config), "replicate": replicate})
        if config.control == "none":
            results[replicate] = run_ticket(config, splits, strategy, dirs, seed)
        else:
            ticket_dir = layout.run_dir(experiment, "none", replicate)
            results[replicate] = run_control(config, splits, strategy, dirs, ticket_dir, seed)
        branch = layout.branch_name(config.control)
        print(f"{layout.experiment_name(config)} {branch} replicate {replicate}:")
        print(report.format_rounds_table(results[replicate], accuracy_key="test_accuracy"))
    return results


def main(defaults: config_lib.ExperimentConfig) -> None:
    """Defines the flags with the suite's defaults, parses them and runs."""
    config_lib.flags_from_config(defaults)

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if not flags.FLAGS["verbosity"].present:  # TensorFlow's INFO lines (checkpoint saves) are noise here
            logging.set_verbosity(logging.WARNING)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, _stop_at_next_checkpoint)
        try:
            train_and_evaluate(config_lib.config_from_flags(), suite_dataset=defaults.dataset)
        except (ValueError, FileNotFoundError, datasets.DatasetUnavailableError) as e:
            _exit(2, f"error: {e}")
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

    app.run(run)


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
