"""One typed configuration for every suite, in groups; absl flags are generated from it.

The settings come in groups, each a dataclass: data, network, training and pruning
(what an experiment computes, hashed into its name) and the run's own settings (how far,
which branch, where, how fast: never hashed). `ExperimentConfig` holds them all, flat.
Each suite module (`experiments/conv6.py`, ...) only states its paper defaults as an
`ExperimentConfig`; `flags_from_config` turns every field into a flag with that default,
so a flag is never written twice.
"""

import dataclasses
import hashlib
import json
import math
import typing
from typing import Optional, Tuple

from absl import flags

from lth_keras import validation
from lth_keras.schedule import SCOPES

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
OPTIMIZERS = ("adam", "sgd")
# The scripts seed NumPy's global generator (keras.utils.set_random_seed), which is 32-bit;
# the library itself takes seeds up to 2**63 - 1.
MAX_SEED = 2**32 - 1


def _field(default, help_text):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """What is trained on: the dataset, its held-out validation split, augmentation."""

    dataset: str = _field("fashion_mnist", "mnist, fashion_mnist, cifar10, mnist1d or synthetic (generated).")
    validation_size: int = _field(5000, "Training examples held out for validation.")
    augment: bool = _field(False, "Random crop and flip (CIFAR).")


@dataclasses.dataclass(frozen=True)
class NetworkSettings:
    """The network."""

    model: str = _field("lenet", "Network: lenet, conv2, conv4, conv6, vgg16, vgg19, resnet18, resnet20.")
    dropout: float = _field(0.0, "Dropout rate after hidden fc layers.")


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How each round trains: schedule, optimizer, batches, validation interval, seed."""

    iterations: int = _field(50000, "Training iterations per round.")
    batch_size: int = _field(60, "Global batch size.")
    optimizer: str = _field("adam", "adam or sgd (momentum 0.9).")
    learning_rate: float = _field(1.2e-3, "Peak learning rate.")
    lr_drops: Tuple[int, ...] = _field((), "Iterations at which the learning rate is multiplied by 0.1.")
    warmup: int = _field(0, "Iterations of linear learning-rate warmup.")
    weight_decay: float = _field(0.0, "L2 weight decay on kernels.")
    seed: int = _field(0, "Seed of the weights, the data order and the controls.")
    eval_every: int = _field(100, "Validate every this many iterations (early-stop resolution).")
    smoke: bool = _field(False, "Shrink the run to seconds (tiny data, few iterations) for tests.")


@dataclasses.dataclass(frozen=True)
class PruningSettings:
    """What is pruned between rounds and what the rounds rewind to."""

    prune_rate: float = _field(0.2, "Fraction of surviving fc weights pruned per round.")
    conv_prune_rate: Optional[float] = _field(None, "Rate for conv layers; default prune_rate.")
    output_prune_rate: Optional[float] = _field(None, "Rate for the output layer; default prune_rate / 2.")
    scope: str = _field("layerwise", "layerwise, or global: one threshold across layers of a rate.")
    one_shot: bool = _field(False, "Prune once, straight to the rates, instead of iteratively.")
    rewind_step: int = _field(0, "0 rewinds to θ₀; k rewinds to the weights after k iterations.")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Where and how a run goes: how far, which branch, files, strategy, speed, checkpoints.

    None of these changes what a run computes (the strategy and the speed settings change
    at most floating-point rounding), so they stay out of the experiment's name: raising
    --prune_iters or --replicates continues the same experiment.
    """

    prune_iters: int = _field(20, "Pruning rounds; the run trains prune_iters + 1 rounds.")
    replicates: int = _field(1, "Independent runs with seeds seed, seed+1, ...")
    control: str = _field("none", "The branch to run; the runner lists them (experiments/branches.py).")
    output_dir: str = _field("runs", "Where runs, TensorBoard logs and tickets are written.")
    data_dir: Optional[str] = _field(
        None, "IDX directory or TFDS data dir; default: Debian's or TFDS_DATA_DIR."
    )
    strategy: str = _field("default", "default, mirrored, multi_worker or tpu.")
    tpu: str = _field("", "TPU name or address for --strategy=tpu.")
    checkpoint_every: int = _field(1000, "Checkpoint every this many iterations (a multiple of eval_every).")
    deterministic: bool = _field(
        False, "Deterministic TensorFlow ops: a resumed run equals an uninterrupted one."
    )
    overwrite: bool = _field(
        False, "Delete this experiment's stored results (or this control's) and start anew."
    )
    jit_compile: bool = _field(
        True, "Compile training and evaluation with XLA (--nojit_compile: plain TensorFlow graphs)."
    )
    steps_per_execution: int = _field(
        0, "Training steps per call into TensorFlow; 0: --eval_every (one call per validation interval)."
    )
    fused_steps: bool = _field(
        True,
        "With XLA on one replica, run each call's steps as one XLA program fed a block of batches "
        "(--nofused_steps: Keras's loop, one batch fetched and one step launched at a time).",
    )


# The groups that define what an experiment computes: they, and only they, are hashed
# into its name and compared with a stored experiment's settings.
COMPUTED_GROUPS = (DataSettings, NetworkSettings, TrainingSettings, PruningSettings)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(RunSettings, PruningSettings, TrainingSettings, NetworkSettings, DataSettings):
    """One suite's whole configuration: every group's fields, flat (config.iterations, ...)."""


# The conv suites' speed defaults. On this 2-core CPU XLA made Conv-6 slower
# (benchmarks/step_time.py, README "Speed"), compiling a VGG step took over a minute, and
# XLA's loop of fused steps ran Conv-2 85x slower (11 s a step).
CONV_SPEED_ON_CPU = dict(jit_compile=False, fused_steps=False)


COMPUTED_FIELDS = tuple(field.name for group in COMPUTED_GROUPS for field in dataclasses.fields(group))
RUN_FIELDS = tuple(field.name for field in dataclasses.fields(RunSettings))


def result_settings(config: "ExperimentConfig") -> dict:
    """The settings that define what an experiment computes (COMPUTED_GROUPS), as JSON-able values."""
    values = {name: getattr(config, name) for name in COMPUTED_FIELDS}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def config_hash(config: "ExperimentConfig") -> str:
    """A stable 10-hex-digit hash of the settings that differ from the field defaults.

    Adding a field with a default leaves every existing hash (and run directory) valid.
    """
    defaults = result_settings(ExperimentConfig())
    changed = {k: v for k, v in result_settings(config).items() if v != defaults[k]}
    text = json.dumps(changed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _check(condition, flag, value, requirement):
    if not condition:
        raise ValueError(f"--{flag}={value!r}: {requirement}")


def _library_rule(check, flag, value, *args) -> None:
    """The library's own check of the argument `--flag` feeds, before anything is written.

    The rule is the library's (one definition); its complaint reaches the user in the
    scripts' form, `--flag=value: ...`.
    """
    try:
        check(value, *args, f"--{flag}")
    except (TypeError, ValueError) as e:
        raise ValueError(f"--{flag}={value!r}: {e}") from e


def _has_type(value, kind) -> bool:
    """True if `value` fits the config field type `kind` (bools are not numbers here)."""
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        return any(_has_type(value, k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:  # Tuple[X, ...]
        return isinstance(value, tuple) and all(_has_type(v, typing.get_args(kind)[0]) for v in value)
    if kind in (int, float):
        numbers = (int,) if kind is int else (int, float)
        return isinstance(value, numbers) and not isinstance(value, bool)
    return isinstance(value, kind) if isinstance(kind, type) else True


def _check_types(config: ExperimentConfig) -> None:
    hints = typing.get_type_hints(ExperimentConfig)
    for field in dataclasses.fields(ExperimentConfig):
        value, kind = getattr(config, field.name), hints[field.name]
        _check(_has_type(value, kind), field.name, value, f"must be of type {kind}")


def validate(config: ExperimentConfig, models=(), datasets=()) -> None:
    """Raises ValueError naming the first bad flag; called before any training."""
    _check_types(config)
    if models:
        _check(config.model in models, "model", config.model, f"must be one of {sorted(models)}")
    if datasets:
        _check(config.dataset in datasets, "dataset", config.dataset, f"must be one of {sorted(datasets)}")
    for name in ("prune_rate", "conv_prune_rate", "output_prune_rate"):  # prune_for_lottery's rates
        value = getattr(config, name)
        if value is not None:
            _library_rule(validation.check_rate, name, value)
    _check(config.prune_iters >= 0, "prune_iters", config.prune_iters, "must be >= 0")
    _library_rule(validation.check_choice, "scope", config.scope, SCOPES)
    _check(
        config.optimizer in OPTIMIZERS, "optimizer", config.optimizer, f"must be one of {list(OPTIMIZERS)}"
    )
    _check(config.strategy in STRATEGIES, "strategy", config.strategy, f"must be one of {list(STRATEGIES)}")
    _check(config.strategy != "tpu" or config.tpu, "tpu", config.tpu, "--strategy=tpu needs --tpu")
    for name in ("iterations", "batch_size", "eval_every", "replicates"):
        _check(getattr(config, name) >= 1, name, getattr(config, name), "must be >= 1")
    _check(
        math.isfinite(config.learning_rate) and config.learning_rate > 0,
        "learning_rate",
        config.learning_rate,
        "must be a finite number > 0",
    )
    _check(
        config.iterations % config.eval_every == 0,
        "eval_every",
        config.eval_every,
        f"must divide --iterations={config.iterations}",
    )
    _check(
        0 <= config.rewind_step < config.iterations,
        "rewind_step",
        config.rewind_step,
        f"must be in [0, --iterations={config.iterations})",
    )
    _check(
        config.rewind_step % config.eval_every == 0,
        "rewind_step",
        config.rewind_step,
        f"must be a multiple of --eval_every={config.eval_every}",
    )
    _check(
        config.steps_per_execution >= 0 and config.eval_every % max(config.steps_per_execution, 1) == 0,
        "steps_per_execution",
        config.steps_per_execution,
        f"must be 0 or divide --eval_every={config.eval_every} (callbacks run between executions)",
    )
    _check(0 <= config.warmup <= config.iterations, "warmup", config.warmup, "must be in [0, iterations]")
    _check(
        math.isfinite(config.weight_decay) and config.weight_decay >= 0,
        "weight_decay",
        config.weight_decay,
        "must be a finite number >= 0",
    )
    _check(
        config.checkpoint_every % config.eval_every == 0 and config.checkpoint_every > 0,
        "checkpoint_every",
        config.checkpoint_every,
        f"must be a positive multiple of --eval_every={config.eval_every}",
    )
    _check(0 <= config.dropout < 1, "dropout", config.dropout, "must be in [0, 1)")
    _check(config.validation_size >= 1, "validation_size", config.validation_size, "must be >= 1")
    _check(
        0 <= config.seed <= MAX_SEED - (config.replicates - 1),
        "seed",
        config.seed,
        f"must be in [0, {MAX_SEED - (config.replicates - 1)}]: the replicates' seeds "
        "(seed ... seed + replicates - 1) must fit NumPy's 32-bit seed",
    )
    _check(bool(config.output_dir), "output_dir", config.output_dir, "must name a directory")
    _check(all(d > 0 for d in config.lr_drops), "lr_drops", config.lr_drops, "must be positive iterations")


def _define(name, default, kind, help_text, flag_values):
    if kind is bool:
        flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
    elif kind is int:
        flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
    elif kind is float:
        flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
    elif kind is str:
        flags.DEFINE_string(name, default, help_text, flag_values=flag_values)
    elif kind == Tuple[int, ...]:
        flags.DEFINE_list(name, [str(d) for d in default], help_text, flag_values=flag_values)
    else:
        raise TypeError(f"no flag type for config field {name}: {kind}")


def flags_from_config(defaults: ExperimentConfig, flag_values=flags.FLAGS, help_texts=None) -> None:
    """Defines one absl flag per config field, defaulting to `defaults`.

    `help_texts` (field name -> text) replaces a field's help, for flags whose choices
    another module registers (--control: the branches).
    """
    hints = typing.get_type_hints(ExperimentConfig)
    for field in dataclasses.fields(ExperimentConfig):
        kind = hints[field.name]
        if typing.get_origin(kind) is typing.Union:  # Optional[X]
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        help_text = (help_texts or {}).get(field.name, field.metadata["help"])
        _define(field.name, getattr(defaults, field.name), kind, help_text, flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> ExperimentConfig:
    """The config the parsed flags describe."""
    values = {}
    for field in dataclasses.fields(ExperimentConfig):
        value = flag_values[field.name].value
        if field.name == "lr_drops":
            try:
                value = tuple(int(v) for v in value)
            except ValueError as e:
                raise ValueError(f"--lr_drops={','.join(value)}: must be integers") from e
        values[field.name] = value
    return ExperimentConfig(**values)
