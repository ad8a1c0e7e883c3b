"""The building blocks of a run: strategy, data, optimizer, model."""

import dataclasses
import functools
import inspect

import numpy as np
import tensorflow as tf

import lth_keras
from experiments import backend
from experiments import config as config_lib
from lth_keras import adapters, fused_steps, pipelines, random_state
from lth_keras.paper import datasets, models

SMOKE = dict(
    iterations=10,
    eval_every=5,
    checkpoint_every=5,
    batch_size=16,
    validation_size=64,
    rewind_step=0,
    warmup=0,
    lr_drops=(),
)
SMOKE_EXAMPLES = {"train": 256, "validation": 64, "test": 64}
DEFAULT_INPUT_SHAPES = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1)}


# --- configuration -----------------------------------------------------------------


def resolve(config: config_lib.ExperimentConfig) -> config_lib.ExperimentConfig:
    """Applies --smoke: a run of seconds with the suite's shape."""
    if not config.smoke:
        return config
    smoke = dict(SMOKE)
    if config.rewind_step:
        smoke["rewind_step"] = smoke["eval_every"]
    return dataclasses.replace(config, prune_iters=min(config.prune_iters, 2), **smoke)


def smoke_summary(config: config_lib.ExperimentConfig) -> str:
    """The one line --smoke prints: every setting it changed (from -> to) and the data it cut."""
    resolved = resolve(config)
    changed = [
        f"{name} {getattr(config, name)} -> {getattr(resolved, name)}"
        for name in config_lib.RUN_FIELDS + config_lib.COMPUTED_FIELDS
        if getattr(config, name) != getattr(resolved, name)
    ]
    examples = ", ".join(f"{count} {split}" for split, count in SMOKE_EXAMPLES.items())
    rounds = resolved.prune_iters + 1
    return f"--smoke: {rounds} rounds; {', '.join(changed)}; data cut to {examples} examples"


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


def warmup_piecewise(keras, peak, warmup=0, drops=()):
    """Linear warmup to `peak` over `warmup` steps, then x0.1 at each step in `drops`: a
    LearningRateSchedule of `keras` (tf_keras or Keras 3)."""
    return _warmup_piecewise_class(keras)(peak, warmup, drops)


@functools.lru_cache(maxsize=None)
def _warmup_piecewise_class(keras):
    # The same arithmetic on either Keras: tf_keras's schedules run TensorFlow ops, Keras 3's
    # its backend's (keras.ops).
    ops = tf if keras is lth_keras.keras else keras.ops

    class WarmupPiecewise(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, peak, warmup=0, drops=()):
            self.peak, self.warmup, self.drops = float(peak), int(warmup), tuple(int(d) for d in drops)

        def __call__(self, step):
            step = ops.cast(step, "float32")
            rate = ops.convert_to_tensor(self.peak, "float32")
            if self.warmup:
                rate = rate * ops.minimum(1.0, (step + 1.0) / self.warmup)
            for drop in self.drops:
                rate = ops.where(step >= drop, rate * 0.1, rate)
            return rate

        def get_config(self):
            return {"peak": self.peak, "warmup": self.warmup, "drops": list(self.drops)}

    return WarmupPiecewise


def make_optimizer(config):
    keras = backend.keras_of(config)
    rate = warmup_piecewise(keras, config.learning_rate, config.warmup, config.lr_drops)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9)
    return keras.optimizers.Adam(rate)


def build_model(config, splits, seed):
    """The suite's network on the run's Keras, prepared for the lottery (and, on tf_keras, with
    its random layers' state in its checkpoints; Keras 3 keeps it in its variables)."""
    builder = models.MODELS[config.model]
    keras = backend.keras_of(config)
    kwargs = {"input_shape": splits.input_shape, "num_classes": splits.num_classes, "seed": seed}
    if backend.is_keras3(config):
        kwargs["keras"] = keras
    if config.dropout:
        if "dropout" not in inspect.signature(builder).parameters:
            raise ValueError(f"--dropout={config.dropout}: model {config.model} has no dropout option")
        kwargs["dropout"] = config.dropout
    model = builder(**kwargs)
    if config.weight_decay:  # read from the layers' configs when prune_for_lottery copies them
        for layer in model.layers:
            if hasattr(layer, "kernel_regularizer"):
                layer.kernel_regularizer = keras.regularizers.L2(config.weight_decay)
    wrapped = lth_keras.prune_for_lottery(
        model,
        pruning_rate=config.prune_rate,
        conv_pruning_rate=config.conv_prune_rate,
        output_pruning_rate=config.output_prune_rate,
        scope=config.scope,
    )
    if backend.is_keras3(config):
        return wrapped
    return random_state.checkpoint_random_state(wrapped)  # so a resumed run draws the same dropout


def model_reset(model):
    """A `ModelReset` of a compiled tf_keras model, to train it again as built; None for a Keras 3
    model, which is built again instead (lth_keras.model_state.ModelReset is tf_keras's)."""
    if adapters.framework_of(model) == "keras":
        return None
    return lth_keras.model_state.ModelReset(model)


def xla_usable(strategy) -> bool:
    """False where XLA cannot compile the step: replicas on CPUs need collectives XLA lacks there."""
    if strategy.num_replicas_in_sync == 1:
        return True
    return not any("CPU" in device.upper() for device in strategy.extended.worker_devices)


def compile_model(model, config):
    """Compiles with the run's optimizer and speed settings: XLA where usable, steps per
    execution, and with XLA on one tf_keras replica, each execution's steps fused into one
    program (Keras 3 runs an execution's steps in one program of its own; its torch backend
    runs eagerly, one step per call).

    Call inside the strategy's scope. A fused model trains on `training_batches`' blocks.
    """
    keras = backend.keras_of(config)
    steps_per_execution = config.steps_per_execution or config.eval_every
    if backend.is_keras3(config):
        jit_compile = {"tensorflow": config.jit_compile, "jax": True, "torch": False}[config.backend]
        if config.backend == "torch":
            steps_per_execution = 1
    else:
        jit_compile = config.jit_compile and xla_usable(tf.distribute.get_strategy())
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    if (
        not backend.is_keras3(config)
        and config.fused_steps
        and jit_compile
        and tf.distribute.get_strategy().num_replicas_in_sync == 1
    ):
        fused_steps.fuse_steps(model)


def training_batches(config, splits, model, start_step: int = 0) -> tf.data.Dataset:
    """The run's training stream from `start_step`, in blocks of steps if `model` is fused."""
    return pipelines.training_stream(
        *splits.train,
        config.batch_size,
        seed=config.seed,
        augment=config.augment,
        start_step=start_step,
        steps_per_element=fused_steps.steps_per_element(model),
    )
