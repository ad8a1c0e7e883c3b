"""The shared runner behind every suite: data -> model -> lottery callback -> files.

`train_and_evaluate(config)` is what the suite scripts, the tests and notebooks call;
`main(defaults)` only turns flags into a config and calls it. Re-running the same
command continues where the last run stopped: finished rounds are skipped, an unfinished
round resumes from its last checkpoint.
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, List

import tensorflow as tf
from absl import app, flags, logging

import lth_keras
from experiments import components, layout, progress
from experiments import config as config_lib
from lth_keras import datasets, models, storage

keras = lth_keras.keras
resolve = components.resolve


def hparams_of(config) -> Dict[str, Any]:
    """The config as TensorBoard HParams values (bool, int, float or str)."""
    result = {}
    for key, value in dataclasses.asdict(config).items():
        result[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return result


def _train(config, splits, model, callback, rounds, point, theta_dir=None):
    """Fits `rounds` rounds with `callback`, first restoring checkpoint `point` if given.

    `theta_dir` holds the θ₀/θ_k a resumed ticket rewinds to (None for a control).
    """
    epochs_per_round = config.iterations // config.eval_every
    initial_epoch = 0
    if point is not None:
        thetas = [None, None]
        if theta_dir is not None:
            for i, name in enumerate(("theta_0", "theta_k")):
                path = layout.theta_file(theta_dir, name)
                thetas[i] = lth_keras.WeightSnapshot.load(path) if os.path.exists(path) else None
        initial_epoch = progress.restore(model, callback, point, *thetas)
        print(f"resuming {point['round_dir']} at {progress.describe(point['state'])}")
    callback.set_initial_epoch(initial_epoch)
    train = datasets.training_stream(
        *splits.train,
        config.batch_size,
        seed=config.seed,
        augment=config.augment,
        start_step=initial_epoch * config.eval_every,
    )
    validation = datasets.make_pipeline(*splits.validation, 1000, training=False)
    callback.test_data = datasets.make_pipeline(*splits.test, 1000, training=False)
    model.fit(
        train,
        steps_per_epoch=config.eval_every,
        initial_epoch=initial_epoch,
        epochs=rounds * epochs_per_round,
        validation_data=validation,
        callbacks=[callback],
        verbose=0,
    )
    return callback


def run_ticket(config, splits, strategy, dirs, seed) -> List[dict]:
    """Iterative (or one-shot) magnitude pruning: prune_iters + 1 rounds (2 when one-shot)."""
    total = 2 if config.one_shot else config.prune_iters + 1
    done = progress.finished_rounds(dirs["read"])
    if len(done) >= total:
        return done[:total]
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
    theta_0 = lth_keras.WeightSnapshot.load(layout.theta_file(ticket_dir, "theta_0"))
    done = {r["round"] for r in progress.finished_rounds(dirs["read"])}
    for record in ticket_rounds[: config.prune_iters + 1]:
        index = record["round"]
        if index in done:
            continue
        masks = lth_keras.Masks.load(layout.round_dir(ticket_dir, index))
        control_seed = seed + 1 + index
        with strategy.scope():
            model = components.build_model(config, splits, seed)
            lth_keras.set_masks(model, masks)
            if config.control == "reinit":
                lth_keras.reinit(model, seed=control_seed)
            else:
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


def prepare_experiment(config, experiment: str) -> None:
    """Checks a stored experiment matches this command (or clears it with --overwrite)."""
    path = layout.config_file(experiment)
    if config.overwrite:
        target = experiment if config.control == "none" else layout.branch_dir(experiment, config.control)
        if os.path.exists(target):
            print(f"--overwrite: deleting {target}")
            shutil.rmtree(target)
    if os.path.exists(path):
        stored = storage.load_json(path)
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
    if chief:
        prepare_experiment(config, experiment)
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
        print(lth_keras.format_rounds_table(results[replicate], accuracy_key="test_accuracy"))
    return results


def main(defaults: config_lib.ExperimentConfig) -> None:
    """Defines the flags with the suite's defaults, parses them and runs."""
    config_lib.flags_from_config(defaults)

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if not flags.FLAGS["verbosity"].present:  # TensorFlow's INFO lines (checkpoint saves) are noise here
            logging.set_verbosity(logging.WARNING)
        try:
            train_and_evaluate(config_lib.config_from_flags(), suite_dataset=defaults.dataset)
        except (ValueError, FileNotFoundError, datasets.DatasetUnavailableError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(run)
