"""The shared runner behind every suite: data -> model -> lottery wrappers -> callback -> files.

`train_and_evaluate(config)` is what the suite scripts, the tests and notebooks call;
`main(defaults)` only turns flags into a config and calls it.
"""

import dataclasses
import inspect
import json
import os
import sys
import tempfile
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf
from absl import app

import lth_keras
from experiments import config as config_lib
from experiments import layout
from lth_keras import datasets, models

keras = lth_keras.keras

SMOKE = dict(
    iterations=10, eval_every=5, batch_size=16, validation_size=64, rewind_step=0, warmup=0, lr_drops=()
)
SMOKE_EXAMPLES = {"train": 256, "validation": 64, "test": 64}


# --- configuration -----------------------------------------------------------------


def resolve(config: config_lib.ExperimentConfig) -> config_lib.ExperimentConfig:
    """Applies --smoke: a run of seconds with the suite's shape."""
    if not config.smoke:
        return config
    smoke = dict(SMOKE)
    if config.rewind_step:
        smoke["rewind_step"] = smoke["eval_every"]
    return dataclasses.replace(config, prune_iters=min(config.prune_iters, 2), **smoke)


# --- building blocks -----------------------------------------------------------------


def make_strategy(config) -> tf.distribute.Strategy:
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if config.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if config.strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if not cluster or resolver.task_type in (None, "chief"):
        return True
    return "chief" not in cluster and resolver.task_type == "worker" and resolver.task_id == 0


def synthetic_splits(input_shape, num_classes=10, seed=0) -> datasets.Splits:
    """Generated, learnable data of a given shape: only when --dataset=synthetic asks for it."""
    rng = np.random.default_rng(seed)
    prototypes = 0.2 * rng.normal(size=(num_classes,) + tuple(input_shape)).astype(np.float32)

    def split(n):
        y = rng.integers(0, num_classes, size=n)
        x = prototypes[y] + rng.normal(scale=1.0, size=(n,) + tuple(input_shape)).astype(np.float32)
        return x, y.astype(np.int64)

    return datasets.Splits(
        train=split(1024),
        validation=split(256),
        test=split(256),
        num_classes=num_classes,
        input_shape=tuple(input_shape),
    )


DEFAULT_INPUT_SHAPES = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1)}


def load_data(config, suite_dataset: str) -> datasets.Splits:
    if config.dataset == "synthetic":
        return synthetic_splits(DEFAULT_INPUT_SHAPES.get(suite_dataset, (28, 28, 1)), seed=config.seed)
    return datasets.load_dataset(
        config.dataset, data_dir=config.data_dir, validation_size=config.validation_size, seed=config.seed
    )


def shrink(splits: datasets.Splits) -> datasets.Splits:
    """The first few examples of each split, for --smoke."""
    cut = lambda xy, n: (xy[0][:n], xy[1][:n])  # noqa: E731
    return dataclasses.replace(
        splits,
        train=cut(splits.train, SMOKE_EXAMPLES["train"]),
        validation=cut(splits.validation, SMOKE_EXAMPLES["validation"]),
        test=cut(splits.test, SMOKE_EXAMPLES["test"]),
    )


class WarmupPiecewise(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak` over `warmup` steps, then x0.1 at each step in `drops`."""

    def __init__(self, peak, warmup=0, drops=()):
        self.peak, self.warmup, self.drops = float(peak), int(warmup), tuple(int(d) for d in drops)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.peak)
        if self.warmup:
            rate = rate * tf.minimum(1.0, (step + 1.0) / self.warmup)
        for drop in self.drops:
            rate = tf.where(step >= drop, rate * 0.1, rate)
        return rate

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "drops": list(self.drops)}


def make_optimizer(config):
    rate = WarmupPiecewise(config.learning_rate, config.warmup, config.lr_drops)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9)
    return keras.optimizers.Adam(rate)


def build_model(config, splits, seed):
    builder = models.MODELS[config.model]
    kwargs = {"input_shape": splits.input_shape, "num_classes": splits.num_classes, "seed": seed}
    if config.dropout:
        if "dropout" not in inspect.signature(builder).parameters:
            raise ValueError(f"--dropout={config.dropout}: model {config.model} has no dropout option")
        kwargs["dropout"] = config.dropout
    model = builder(**kwargs)
    if config.weight_decay:
        for layer in lth_keras.wrapping.flat_layers(model):
            if hasattr(layer, "kernel_regularizer"):
                layer.kernel_regularizer = keras.regularizers.L2(config.weight_decay)
    return lth_keras.prune_for_lottery(
        model,
        pruning_rate=config.prune_rate,
        conv_pruning_rate=config.conv_prune_rate,
        output_pruning_rate=config.output_prune_rate,
        scope=config.scope,
    )


# --- TensorBoard -----------------------------------------------------------------------


def hparams_of(config) -> Dict[str, Any]:
    """The config as TensorBoard HParams values (bool, int, float or str)."""
    result = {}
    for key, value in dataclasses.asdict(config).items():
        result[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return result


def round_scalars(record) -> Dict[str, float]:
    """The per-round numbers written to TensorBoard, by tag."""
    scalars = {"weights_remaining": record["weights_remaining"]}
    for layer, sparsity in record["layer_sparsity"].items():
        scalars[f"sparsity/{layer}"] = sparsity
    for name, value in record["metrics"].items():
        scalars[f"final/{name}"] = value
    for name, value in record["early_stop_metrics"].items():
        scalars[f"early_stop/{name}"] = value
    if record["early_stop_step"] is not None:
        scalars["early_stop_step"] = record["early_stop_step"]
    return scalars


class RoundLogger(lth_keras.LotteryTicketCallback):
    """The lottery callback that also writes each round's files and TensorBoard scalars."""

    def __init__(self, run_dir: str, round_offset: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.run_dir = run_dir
        self.round_offset = round_offset
        self.writer = tf.summary.create_file_writer(layout.tensorboard_dir(run_dir))

    def on_round_end(self, record):
        record["round"] += self.round_offset
        round_dir = layout.round_dir(self.run_dir, record["round"])
        lth_keras.get_masks(self.model).save(round_dir)
        lth_keras.storage.save_json(layout.metrics_file(round_dir), record)
        with self.writer.as_default():
            for tag, value in round_scalars(record).items():
                tf.summary.scalar(tag, value, step=record["round"])
        self.writer.flush()


# --- runs ------------------------------------------------------------------------------


def _fit_rounds(config, splits, model, callback, rounds):
    rounds_epochs = config.iterations // config.eval_every
    train = datasets.make_pipeline(
        *splits.train, config.batch_size, training=True, seed=config.seed, augment=config.augment
    ).repeat()
    validation = datasets.make_pipeline(*splits.validation, 1000, training=False)
    callback.test_data = datasets.make_pipeline(*splits.test, 1000, training=False)
    model.fit(
        train,
        steps_per_epoch=config.eval_every,
        epochs=rounds * rounds_epochs,
        validation_data=validation,
        callbacks=[callback],
        verbose=0,
    )


def _compile(model, config):
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def run_ticket(config, splits, strategy, run_dir, seed) -> List[dict]:
    """Iterative (or one-shot) magnitude pruning: prune_iters + 1 rounds."""
    with strategy.scope():
        model = build_model(config, splits, seed)
        _compile(model, config)
    print(f"{config.model}: {lth_keras.get_masks(model).size:,} prunable weights")
    callback = RoundLogger(
        run_dir,
        epochs_per_round=config.iterations // config.eval_every,
        rewind_step=config.rewind_step,
        one_shot=config.one_shot,
        verbose=1,
    )
    rounds = 2 if config.one_shot else config.prune_iters + 1
    _fit_rounds(config, splits, model, callback, rounds)
    callback.save(layout.ticket_dir(run_dir))
    return callback.rounds


def run_control(config, splits, strategy, run_dir, ticket_run_dir, seed) -> List[dict]:
    """Retrains each saved ticket mask under a control, one round per pruning level."""
    ticket_dir = layout.ticket_dir(ticket_run_dir)
    if not os.path.isdir(ticket_dir):
        raise FileNotFoundError(
            f"--control={config.control} retrains the ticket's saved masks, but {ticket_dir} does not exist: "
            "run the same command with --control=none first"
        )
    ticket = lth_keras.load_ticket(ticket_dir)
    records = []
    for record in ticket.rounds:
        masks = lth_keras.Masks.load(layout.round_dir(ticket_run_dir, record["round"]))
        with strategy.scope():
            model = build_model(config, splits, seed)
            lth_keras.set_masks(model, masks)
            if config.control == "reinit":
                lth_keras.reinit(model, seed=seed + 1 + record["round"])
            else:
                lth_keras.random_prune(model, ticket.theta_0, seed=seed + 1 + record["round"], masks=masks)
            _compile(model, config)
        callback = RoundLogger(
            run_dir,
            round_offset=record["round"],
            epochs_per_round=config.iterations // config.eval_every,
            verbose=1,
        )
        _fit_rounds(config, splits, model, callback, 1)
        records.extend(callback.rounds)
    return records


def train_and_evaluate(config: config_lib.ExperimentConfig, suite_dataset: str = "") -> Dict[str, Any]:
    """Runs every replicate of an experiment; returns {replicate: [round records]}."""
    config_lib.validate(config, models=models.MODELS, datasets=datasets.DATASETS + ("synthetic",))
    config = resolve(config)
    splits = load_data(config, suite_dataset or config.dataset)
    if config.smoke:
        splits = shrink(splits)
    strategy = make_strategy(config)
    if is_chief(strategy):
        experiment_dir = layout.experiment_dir(config)
    else:  # other workers train in lockstep but their files are thrown away
        experiment_dir = tempfile.mkdtemp(prefix="lth_keras_worker_")
    lth_keras.storage.save_json(layout.config_file(experiment_dir), dataclasses.asdict(config))
    results = {}
    for replicate in range(config.replicates):
        seed = config.seed + replicate
        keras.utils.set_random_seed(seed)
        run_dir = layout.run_dir(experiment_dir, config.control, replicate)
        if os.path.isdir(run_dir) and os.listdir(run_dir):
            raise ValueError(
                f"{run_dir} already holds results; choose another --output_dir or move them away"
            )
        with tf.summary.create_file_writer(layout.tensorboard_dir(run_dir)).as_default():
            from tensorboard.plugins.hparams import api as hparams_api

            hparams_api.hparams({**hparams_of(config), "replicate": replicate})
        if config.control == "none":
            results[replicate] = run_ticket(config, splits, strategy, run_dir, seed)
        else:
            # Read the ticket from the shared experiment directory, also on non-chief workers.
            ticket_run = layout.run_dir(layout.experiment_dir(config), "none", replicate)
            results[replicate] = run_control(config, splits, strategy, run_dir, ticket_run, seed)
        print(f"replicate {replicate} ({config.control if config.control != 'none' else 'ticket'}):")
        print(lth_keras.format_rounds_table(results[replicate], accuracy_key="test_accuracy"))
    return results


def main(defaults: config_lib.ExperimentConfig) -> None:
    """Defines the flags with the suite's defaults, parses them and runs."""
    config_lib.flags_from_config(defaults)

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        try:
            config = config_lib.config_from_flags()
            train_and_evaluate(config, suite_dataset=defaults.dataset)
        except (ValueError, FileNotFoundError, datasets.DatasetUnavailableError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(run)
