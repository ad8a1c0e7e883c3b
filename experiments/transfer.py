"""Ticket transfer across datasets (seed 004): a ticket found on dataset A, trained on dataset B.

python -m experiments.transfer --source=runs/<experiment> --dataset=maxgroup [flags]

--source is the experiment directory of a ticket found by pruning (python -m
experiments.<suite>); --dataset the target B, whose inputs must have the source's shape.
For each of the source ticket's finished rounds (a level, up to --prune_iters), one round is
trained on B in each of three branches, as the controls of any experiment are:

    ticket        the source's masks, its weights rewound to the source's θ₀ (θ_k if the
                  source was found with --rewind_step)
    reinit        the source's masks, weights drawn afresh from their initializers
    random_prune  a random mask with the source's per-layer counts, the source's θ₀

The network and the pruning settings are the source's (a different --model or pruning flag is
refused). Training settings (--optimizer, --learning_rate, --iterations, --batch_size, ...),
--validation_size, --augment, --prune_iters, --replicates and the speed settings are the
source's unless given: seed 004's variant is --optimizer=sgd --learning_rate=1e-2
--iterations=2750 --eval_every=50 (3 epochs of 55,000 examples in batches of 60).
--control=none|reinit|random_prune runs that branch only; without it the three run in turn.

Results go to <output_dir>/<source experiment>_to_<dataset>-<hash>/ (the hash covers the
source's name and the target's settings) with the files, TensorBoard logs and resuming of any
experiment; `python -m experiments.report <dir>` adds whether the ticket keeps its advantage.
"""

import dataclasses
import importlib
import os
import sys
from typing import Dict, List, Optional, Sequence

from absl import flags

from experiments import cli, layout
from experiments import config as config_lib
from lth_keras import storage
from lth_keras.paper import datasets

flags.DEFINE_string("source", None, "The experiment directory of the ticket to transfer (runs/<experiment>).")

DEFAULTS = config_lib.ExperimentConfig()
CONTROLS = ("reinit", "random_prune")  # the registry's controls a transfer trains beside the ticket
# Settings a transfer takes from the source and refuses to change: its network and how its
# ticket was found.
FIXED = ("model",) + tuple(f.name for f in dataclasses.fields(config_lib.PruningSettings))
# Settings of this command alone; every other one is the source's unless given.
OWN = ("dataset", "control", "output_dir", "data_dir", "strategy", "tpu", "deterministic", "overwrite")


@dataclasses.dataclass(frozen=True)
class TransferConfig(config_lib.ExperimentConfig):
    """A transfer's settings: the target's, and the name of the source experiment (hashed)."""

    source_experiment: str = dataclasses.field(
        default="", metadata={"help": "The source experiment's name (<model>_<dataset>-<hash>)."}
    )


# --- the source, read without TensorFlow --------------------------------------------------


def _refuse(value, requirement: str):
    raise ValueError(f"--source={value!r}: {requirement}")


def source_settings(source: Optional[str]) -> dict:
    """The source experiment's stored settings; refuses (ValueError naming --source) anything but
    the directory of an experiment whose ticket has a finished round."""
    if not source:
        _refuse(source, "give the experiment directory of the ticket to transfer (runs/<experiment>)")
    if not os.path.isdir(source):
        _refuse(source, "no such directory")
    path = layout.config_file(source)
    if not os.path.exists(path):
        _refuse(source, f"not an experiment directory: it has no {layout.CONFIG_FILE}")
    try:
        stored = storage.load_json(path)
    except (OSError, ValueError) as e:
        _refuse(source, f"it cannot be read ({e})")
    if not isinstance(stored, dict) or "model" not in stored:
        _refuse(source, f"{path} does not hold an experiment's settings")
    if stored.get("source_experiment"):
        _refuse(source, "it is a transfer itself; give the experiment where the ticket was found")
    first = layout.record_file(layout.round_dir(source_run(source, 0), 0))
    if not os.path.exists(first):
        _refuse(
            source,
            f"its ticket has no finished round ({first} is missing): run the ticket first "
            f"(python -m experiments.{stored['model']} with the source's flags)",
        )
    return stored


def source_run(source: str, replicate: int) -> str:
    """The source ticket's run of `replicate`."""
    return layout.run_dir(source, "ticket", replicate)  # branches.TICKET.name (branches imports TensorFlow)


def source_replicates(source: str) -> int:
    """How many replicates of the source's ticket have a finished round (0, 1, ... without gaps)."""
    count = 0
    while os.path.exists(layout.record_file(layout.round_dir(source_run(source, count), 0))):
        count += 1
    return count


def _as_config(stored: dict) -> config_lib.ExperimentConfig:
    """The stored settings (JSON: lists for tuples) as an ExperimentConfig."""
    names = {f.name for f in dataclasses.fields(config_lib.ExperimentConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in names}
    return config_lib.ExperimentConfig(**values)


def suite_dataset(model: str) -> str:
    """The dataset of the suite of `model` (its input shape is what --dataset=synthetic takes)."""
    return importlib.import_module(f"experiments.{model}").DEFAULTS.dataset


def input_shape(dataset: str, model: str):
    """The inputs' shape of `dataset` for `model` (synthetic data takes its suite's)."""
    return datasets.INPUT_SHAPES[suite_dataset(model) if dataset == "synthetic" else dataset]


def rewind_point(source_config) -> str:
    """The θ the source's ticket rewinds to: theta_k with late rewinding, else theta_0."""
    return "theta_k" if source_config.rewind_step else "theta_0"


# --- the transfer's settings ----------------------------------------------------------------


def command_defaults(source: Optional[str]) -> config_lib.ExperimentConfig:
    """The flags' defaults for a transfer of `source`: its settings but for the OWN ones (DEFAULTS
    if it cannot be read: `transfer_config` then refuses it, saying why)."""
    try:
        stored = _as_config(source_settings(source))
    except ValueError:
        return DEFAULTS
    return dataclasses.replace(stored, **{name: getattr(DEFAULTS, name) for name in OWN})


def transfer_config(config, source: str, given: Sequence[str]) -> TransferConfig:
    """The config a transfer of `source` runs: `config` (the command line's, its defaults from
    `command_defaults`) and the source's name. `given`: the settings given on the command line.
    Raises ValueError naming a flag that cannot be: no --dataset, a FIXED setting other than
    the source's, inputs of another shape, more replicates than the source has, or any value
    `config.validate` refuses."""
    stored = _as_config(source_settings(source))
    if "dataset" not in given:
        raise ValueError("--dataset: give the target dataset (e.g. --dataset=maxgroup)")
    controls = ("none",) + CONTROLS
    if config.control not in controls:
        raise ValueError(f"--control={config.control!r}: must be one of {list(controls)}")
    for name in FIXED:
        if getattr(config, name) != getattr(stored, name):
            raise ValueError(
                f"--{name}={getattr(config, name)!r}: a transfer trains the source's network and ticket "
                f"as found; this setting is the source's ({name}={getattr(stored, name)!r})"
            )
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config_lib.ExperimentConfig)}
    target = TransferConfig(**values, source_experiment=layout.experiment_name(stored))
    config_lib.validate(target)
    theirs, ours = input_shape(stored.dataset, stored.model), input_shape(target.dataset, target.model)
    if theirs != ours:
        raise ValueError(
            f"--dataset={target.dataset!r}: its inputs have shape {ours}, but the source's ticket "
            f"({target.source_experiment}) was found on {stored.dataset} inputs of shape {theirs}"
        )
    available = source_replicates(source)
    if target.replicates > available:
        raise ValueError(
            f"--replicates={target.replicates}: the source has a finished ticket for {available} "
            f"replicate(s) ({source})"
        )
    return target


# --- the branches on the target -------------------------------------------------------------


def _rewind(model, masks, weights, seed) -> None:
    """The ticket branch's weights: the source's θ (θ₀ or θ_k) on the source's masks."""
    import lth_keras

    lth_keras.apply_ticket(model, lth_keras.Ticket(masks, weights))


def transfer_branches(source: str) -> List:
    """The ticket and the CONTROLS, each retraining the source's ticket (its masks, θ) on the target."""
    from experiments import branches

    theta = rewind_point(_as_config(source_settings(source)))
    ticket = dataclasses.replace(
        branches.TICKET,
        description="retrain each of the source ticket's masks from the source's θ₀ (θ_k)",
        retrain=_rewind,
    )
    return [_on_source(ticket, source, theta)] + [
        _on_source(branches.selected(control), source, "theta_0") for control in CONTROLS
    ]


def _on_source(branch, source: str, theta: str):
    """`branch` with its rounds retraining the source ticket's masks (given `theta` of the source)."""
    from experiments import branches

    def run(branch, config, splits, strategy, dirs, experiment, replicate, seed):
        ticket = source_run(source, replicate)
        return branches.run_control(
            branch, config, splits, strategy, dirs, ticket, seed, branch.retrain, replicate, theta
        )

    def preflight(branch, config, experiment, replicate, model):
        branches.check_ticket(config, source_run(source, replicate), model, thetas=(theta,))
        own = layout.run_dir(experiment, branch.name, replicate)
        return branches.check_own_run(config, own, model, rewinds=False)

    return dataclasses.replace(branch, run=run, preflight=preflight, check=lambda config: None)


def run(config: TransferConfig, source: str, control: Optional[str] = None) -> Dict[str, dict]:
    """Trains (or resumes) the transfer's branches (only `control`'s if given) in turn; returns
    {branch name: {replicate: [round records]}}."""
    from experiments import runner

    results = {}
    for branch in transfer_branches(source):
        if control is None or branch.control == control:
            suite = suite_dataset(config.model)
            results[branch.name] = runner.train_and_evaluate(config, suite_dataset=suite, branch=branch)
    return results


# --- the command line ---------------------------------------------------------------------


def _given() -> List[str]:
    """The config's settings given on the command line."""
    return [f.name for f in dataclasses.fields(config_lib.ExperimentConfig) if flags.FLAGS[f.name].present]


def _check(config) -> TransferConfig:
    return transfer_config(config, flags.FLAGS.source, _given())


def _train(config, suite_dataset: str = "") -> None:
    run(config, flags.FLAGS.source, config.control if flags.FLAGS["control"].present else None)


def _source_flag(argv: Sequence[str]) -> Optional[str]:
    """--source from the command line, read before the other flags are defined (their defaults
    are the source's)."""
    early = flags.FlagValues()
    flags.DEFINE_string("source", None, "", flag_values=early)
    early(list(argv), known_only=True)
    return early.source


def main(defaults: config_lib.ExperimentConfig = DEFAULTS, argv=None) -> None:
    """The command line: the flags default to the source's settings (`command_defaults`)."""
    argv = list(sys.argv if argv is None else argv)
    if defaults is DEFAULTS:
        defaults = command_defaults(_source_flag(argv))
    cli.main(defaults, argv, check=_check, train=_train)


if __name__ == "__main__":
    main()
