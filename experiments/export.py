"""Exports a round of a ticket run as a deployable model; prints its size and speed against the dense model.

    python -m experiments.export runs/<experiment> [--round=N] [--format=tflite,saved_model,keras] [--int8]

What is exported is the model that round n trained: the ticket's masks with the weights
training reached (a ticket directory alone holds only the masks and θ₀/θ_k). They come from
the round's checkpoint while the run keeps it (the last round's always is), else the round
is trained again as the run trained it: the experiment's model from its config.json, the
round's masks and θ₀ (θ_k with --rewind_step), a fresh optimizer, the round's iterations
on the run's data stream from where that round began. That is bit-identical to the run
only for a --deterministic run without dropout; the command prints which weights it took,
and for retrained ones the test accuracy the run recorded next to the one retrained.
The dense model it compares with is round 0 (all weights), got the same way.

Files go to --export_dir (default <experiment>.export/replicate_<i>/round_<n>/): model.tflite,
model_int8.tflite, saved_model/, model.keras, and figures.json (the printed figures).
Refused, with `error: ...` and exit code 2, before anything is written: a format that is
unknown or not installed (naming the package), a round that is not finished or whose files
fail verification against the run's manifest, an output path that exists (unless
--overwrite).
"""

import dataclasses
import importlib
import logging
import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from absl import app, flags
from absl import logging as absl_logging

from experiments import backend, cli
from lth_keras import exporting

flags.DEFINE_integer("round", None, "The round to export (default: the run's last finished round).")
flags.DEFINE_integer("replicate", 0, "The replicate of the ticket run.")
flags.DEFINE_list("format", ["tflite"], f"Formats to write, comma-separated: {', '.join(exporting.FORMATS)}.")
flags.DEFINE_bool("int8", False, "Also write dynamic-range int8 TFLite (needs tflite among --format).")
flags.DEFINE_string(
    "export_dir", None, "Output directory (default: <experiment>.export/replicate_<i>/round_<n>)."
)
flags.DEFINE_bool("overwrite", False, "Replace output files that exist.")
flags.DEFINE_bool(
    "retrain", False, "Retrain the round even when its checkpoint is kept (to check it reproduces)."
)
flags.DEFINE_bool("dense", True, "Measure round 0 (the dense model) in the same formats, for comparison.")
flags.DEFINE_integer(
    "latency_runs", 500, "Single-example calls whose median latency is reported.", lower_bound=1
)
FLAGS = flags.FLAGS

TICKET_BRANCH = "ticket"
FILE_NAMES = {
    "tflite": "model.tflite",
    "tflite_int8": "model_int8.tflite",
    "saved_model": "saved_model",
    "keras": "model.keras",
}
FIGURES_FILE = "figures.json"


@dataclasses.dataclass
class Variant:
    """One file to write: a format, with int8 weights or not."""

    format: str
    int8: bool = False

    @property
    def key(self) -> str:
        return self.format + ("_int8" if self.int8 else "")

    @property
    def label(self) -> str:
        return {"tflite": "tflite, sparse", "tflite_int8": "tflite, sparse + int8"}.get(self.key, self.format)


def variants(formats: List[str], int8: bool) -> List[Variant]:
    """The files the flags ask for; raises ValueError naming a bad flag value."""
    unknown = [f for f in formats if f not in exporting.FORMATS]
    if unknown or not formats:
        raise ValueError(f"--format={','.join(formats)}: each must be one of {', '.join(exporting.FORMATS)}")
    if int8 and "tflite" not in formats:
        raise ValueError(
            f"--int8: dynamic-range int8 is a TFLite option; add tflite to --format={','.join(formats)}"
        )
    chosen = [Variant(f) for f in dict.fromkeys(formats)]
    return chosen + ([Variant("tflite", int8=True)] if int8 else [])


# --- the round and its trained model -----------------------------------------------------


@dataclasses.dataclass
class Round:
    """A finished round of a ticket run, with what it takes to rebuild its model."""

    experiment: str
    run: str
    index: int
    record: Dict[str, Any]
    config: Any  # experiments.config.ExperimentConfig
    splits: Any  # lth_keras.paper.datasets.Splits

    @property
    def directory(self) -> str:
        from experiments import layout

        return layout.round_dir(self.run, self.index)


def stored_config(experiment: str):
    """The experiment's config.json as an ExperimentConfig; raises RunFileError naming a bad file."""
    from experiments import config as config_lib
    from experiments import integrity, layout
    from lth_keras import storage

    path = layout.config_file(experiment)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{experiment} is not an experiment directory: it has no {layout.CONFIG_FILE}"
        )
    with integrity.reading(path, integrity.START_ANEW):
        stored = storage.load_json(path)
        fields = {f.name: f for f in dataclasses.fields(config_lib.ExperimentConfig)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
        config = config_lib.ExperimentConfig(**values)
        config_lib.validate(config)
    return config


def suite_dataset(model_name: str) -> str:
    """The dataset of the suite that runs `model_name` (what --dataset=synthetic is shaped like)."""
    return importlib.import_module(f"experiments.{model_name}").DEFAULTS.dataset


def find_round(experiment: str, replicate: int, index: Optional[int]) -> Round:
    """The finished round `index` (default the last) of the ticket run, its config and data."""
    from experiments import components, layout, progress

    config = stored_config(experiment)
    run = layout.run_dir(experiment, TICKET_BRANCH, replicate)
    finished = progress.finished_rounds(run) if os.path.isdir(run) else []
    if not finished:
        raise FileNotFoundError(f"--replicate={replicate}: {run} has no finished round")
    if index is None:
        index = finished[-1]["round"]
    if not 0 <= index < len(finished):
        raise ValueError(f"--round={index}: {run} has finished rounds 0 to {len(finished) - 1}")
    splits = components.load_data(config, suite_dataset(config.model))
    if config.smoke:
        splits = components.shrink(splits)
    return Round(experiment, run, index, finished[index], config, splits)


def check_files(run: str, indices: List[int], checkpoints: List[int]) -> None:
    """Refuses (RunFileError) when a file the export reads fails verification: the run's own
    files (θ, manifest), the ticket files of rounds `indices` and the checkpoints of `checkpoints`."""
    from experiments import integrity

    def needed(problem) -> bool:
        index = integrity.round_of(run, problem.path)
        if index is None:
            return True
        return index in checkpoints if integrity.in_checkpoint(problem.path) else index in indices

    integrity.refuse([p for p in integrity.problems(run) if needed(p)])


def kept_checkpoint(round_: Round) -> Optional[Dict[str, Any]]:
    """The checkpoint written when the round ended, if the run still keeps it."""
    from experiments import layout, progress

    if not os.path.isdir(layout.checkpoint_dir(round_.directory)):
        return None
    point = progress.resume_point(round_.run, only_round=round_.index)
    intervals = (round_.index + 1) * (round_.config.iterations // round_.config.eval_every)
    return point if point is not None and point["state"]["epoch"] == intervals else None


def _fresh_model(round_: Round):
    from experiments import backend, components

    seed = round_.config.seed + int(os.path.basename(round_.run).split("_")[-1])
    backend.set_random_seed(round_.config, seed)
    return components.build_model(round_.config, round_.splits, seed)


def restore_trained(round_: Round, point) -> Tuple[Any, str]:
    """The round's trained model from its checkpoint, its masks checked against the round's."""
    import numpy as np

    import lth_keras
    from experiments import checkpoints, integrity

    model = _fresh_model(round_)
    with integrity.reading(point["path"], integrity.redo_from(round_.directory)):
        checkpoints.restore_model(model, point["path"])
        masks, stored = lth_keras.get_masks(model), lth_keras.load_ticket(round_.directory).masks
        if any(not np.array_equal(masks[k], stored[k]) for k in stored):
            raise ValueError(f"its masks are not those of {round_.directory}")
    return model, f"round {round_.index}'s trained weights, from its checkpoint {point['path']}"


def retrain(round_: Round) -> Tuple[Any, str]:
    """The round trained again as the run trained it (module docstring); says how it compares."""
    import lth_keras
    from experiments import backend, components, integrity
    from lth_keras import adapters, pipelines

    config = round_.config
    if config.deterministic:
        backend.make_deterministic(config)
    model = _fresh_model(round_)
    adapter = adapters.for_model(model)
    rewinds_to_k = bool(config.rewind_step) and round_.index > 0
    with integrity.reading(round_.directory, integrity.redo_from(round_.directory)):
        ticket = lth_keras.load_ticket(round_.directory)
        lth_keras.apply_ticket(model, ticket, weights="theta_k" if rewinds_to_k else "theta_0")
    components.compile_model(model, config)
    adapter.enable_training(model)
    if rewinds_to_k:
        model.optimizer.iterations.assign(config.rewind_step)
    train = components.training_batches(
        config, round_.splits, model, start_step=round_.index * config.iterations
    )
    model.fit(
        train, steps_per_epoch=config.eval_every, epochs=config.iterations // config.eval_every, verbose=0
    )
    adapter.apply_masks_to_weights(model)
    test = pipelines.make_pipeline(*round_.splits.test, 1000, training=False)
    accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    recorded = round_.record["metrics"].get("test_accuracy")
    how = (
        f"round {round_.index} retrained from its ticket ({'θ_k' if rewinds_to_k else 'θ₀'} and masks), "
        f"{config.iterations:,} iterations on the run's data order: test accuracy {accuracy:.4f}"
    )
    if recorded is not None:
        how += f", the run recorded {recorded:.4f}"
    exact = config.deterministic and not config.dropout
    return model, how + ("" if exact else " (bit-identical only for a --deterministic run without dropout)")


def round_model(round_: Round, force_retrain: bool = False) -> Tuple[Any, str]:
    """The model round `round_` trained, and which weights those are, in words."""
    point = None if force_retrain else kept_checkpoint(round_)
    return restore_trained(round_, point) if point is not None else retrain(round_)


# --- writing and measuring ---------------------------------------------------------------


def export_and_measure(model, directory: str, chosen: List[Variant], splits, runs: int, overwrite: bool):
    """Writes each variant of `model` into `directory`; returns {variant key: figures as a dict}."""
    from lth_keras import adapters
    from lth_keras import exported as exported_lib

    x, y = splits.test
    keras3 = adapters.framework_of(model) == "keras"
    results = {}
    for variant in chosen:
        path = os.path.join(directory, FILE_NAMES[variant.key])
        written = exporting.export(
            model, path, variant.format, int8=variant.int8, overwrite=overwrite, check_inputs=x
        )
        exported = exported_lib.load_exported(path, variant.format, keras3)
        figures = exported_lib.measure(exported, x, y, runs=runs)
        results[variant.key] = {
            "path": path,
            "max_difference": written.max_difference,
            **dataclasses.asdict(figures),
        }
    return results


def keras_accuracy(model, splits) -> float:
    """Test accuracy of the stripped model, the figure each export must match."""
    import numpy as np

    import lth_keras

    x, y = splits.test
    return float(
        np.mean(np.argmax(lth_keras.strip(model).predict(x, batch_size=1000, verbose=0), axis=-1) == y)
    )


def _share(value: float, whole: Optional[float]) -> str:
    return "" if whole is None else f" ({100 * value / whole:.1f}%)"


def format_row(name: str, figures: Dict[str, Any], keras: float, dense: Optional[Dict[str, Any]]) -> str:
    """A table row; sizes also as a share of the dense model's (`dense`, if measured)."""
    size = f"{figures['size']:,} B{_share(figures['size'], dense and dense['size'])}"
    gzipped = f"{figures['gzip_size']:,} B{_share(figures['gzip_size'], dense and dense['gzip_size'])}"
    kept = f"{figures['kept']:,} / {figures['parameters']:,}{_share(figures['kept'], figures['parameters'])}"
    latency = f"{1e6 * figures['latency']:.1f} µs (of {figures['runs']})"
    versus = f"{100 * (figures['accuracy'] - keras):+.2f} pp"
    cells = [name, size, gzipped, kept, f"{figures['accuracy']:.4f}", versus, latency, figures["runtime"]]
    return "| " + " | ".join(cells) + " |"


TABLE_HEAD = (
    "| model | size | gzip | parameters kept | test accuracy | vs Keras | latency (median) | runtime |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
)


def format_tables(
    chosen: List[Variant], rows: Dict[str, Dict[str, Dict[str, Any]]], keras: Dict[str, float]
) -> str:
    """One Markdown table per variant, a row per model measured (the dense one first, if any).

    `vs Keras` is the export's test accuracy minus the stripped Keras model's.
    """
    lines = []
    for variant in chosen:
        lines += ["", variant.label, *TABLE_HEAD]
        dense = next((rows[name][variant.key] for name in rows if name.startswith("dense")), None)
        for name in rows:
            reference = None if name.startswith("dense") else dense
            lines.append(format_row(name, rows[name][variant.key], keras[name], reference))
    return "\n".join(lines)


def default_out(round_: Round) -> str:
    return os.path.join(
        os.path.normpath(round_.experiment) + ".export", os.path.basename(round_.run), f"round_{round_.index}"
    )


def sibling(round_: Round, index: int) -> Round:
    """Another finished round of the same run."""
    from experiments import progress

    record = progress.finished_rounds(round_.run)[index]
    return dataclasses.replace(round_, index=index, record=record)


def run(
    experiment: str,
    round_index: Optional[int] = None,
    replicate: int = 0,
    formats: Tuple[str, ...] = ("tflite",),
    int8: bool = False,
    out: Optional[str] = None,
    overwrite: bool = False,
    force_retrain: bool = False,
    dense: bool = True,
    latency_runs: int = 500,
) -> Dict[str, Any]:
    """Exports round `round_index` of the experiment's ticket run and measures it (and round 0).

    Everything that can refuse (flags, the round, its files, the output paths, a format not
    installed) does so before anything is trained or written. Returns what figures.json holds.
    """
    from lth_keras import storage

    chosen = variants(list(formats), int8)
    if not os.path.isdir(experiment):
        raise FileNotFoundError(f"no experiment directory at {experiment}")
    ticket = find_round(experiment, replicate, round_index)
    out = out or default_out(ticket)
    for target in [os.path.join(out, FILE_NAMES[v.key]) for v in chosen] + [os.path.join(out, FIGURES_FILE)]:
        if os.path.lexists(target) and not overwrite:
            raise FileExistsError(
                f"{target} exists: nothing was written; use --overwrite to replace it, "
                "or another --export_dir"
            )
    sources = {"ticket": ticket}
    if dense and ticket.index:
        sources = {"dense": sibling(ticket, 0), **sources}
    from_checkpoint = [
        r.index for r in sources.values() if not force_retrain and kept_checkpoint(r) is not None
    ]
    check_files(ticket.run, [r.index for r in sources.values()], from_checkpoint)
    if any(v.format == "tflite" for v in chosen):
        exporting.tflite_interpreter_class()  # "not installed" is refused before training

    rows, reference, described = {}, {}, []
    for name, source in sources.items():
        model, how = round_model(source, force_retrain)
        label = f"{name}, round {source.index} ({100 * source.record['weights_remaining']:.2f}% weights)"
        described.append(f"{label}: {how}")
        reference[label] = keras_accuracy(model, source.splits)
        if name == "dense":  # measured beside the ticket, not kept
            with tempfile.TemporaryDirectory(prefix="lth_keras_dense_") as scratch:
                rows[label] = export_and_measure(model, scratch, chosen, source.splits, latency_runs, False)
            for figures in rows[label].values():
                figures["path"] = None
        else:
            rows[label] = export_and_measure(model, out, chosen, source.splits, latency_runs, overwrite)
    summary = {
        "experiment": experiment,
        "round": ticket.index,
        "replicate": replicate,
        "weights": described,
        "keras_test_accuracy": reference,
        "figures": rows,
    }
    storage.save_json(os.path.join(out, FIGURES_FILE), summary)
    print("weights exported:")
    for line in described:
        print(f"  {line}")
    print("Keras model (stripped): test accuracy " + ", ".join(f"{k} {a:.4f}" for k, a in reference.items()))
    print(format_tables(chosen, rows, reference))
    print(f"\nwritten: {out} ({', '.join(FILE_NAMES[v.key] for v in chosen)}, {FIGURES_FILE})")
    return summary


def parse_flags(argv):
    """absl's parse, refusing a bad flag the suites' way (one `error:` line, exit 2)."""
    try:
        return FLAGS(argv)
    except flags.UnrecognizedFlagError as e:
        cli.refuse(f"{e.flagvalue}: unknown flag; --help lists the flags")
    except (flags.Error, ValueError) as e:
        cli.refuse(str(e).removeprefix("flag "))


def main(argv):
    if len(argv) != 2:
        cli.refuse(f"give one experiment directory (runs/<experiment>), got {argv[1:] or 'none'}")
    try:
        variants(FLAGS.format, FLAGS.int8)
    except ValueError as e:
        cli.refuse(str(e))
    if not os.path.isdir(argv[1]):
        cli.refuse(f"no experiment directory at {argv[1]}")
    backend.select_stored(argv[1])  # the run's Keras, before TensorFlow imports Keras 3
    cli.start_tensorflow(quiet=True)
    import tensorflow as tf

    for logger in [logging.getLogger(name) for name in cli.NOISY_LOGGERS] + [tf.get_logger()]:
        logger.setLevel(logging.ERROR)  # TensorFlow's INFO lines while saving and converting
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        run(
            argv[1],
            round_index=FLAGS.round,
            replicate=FLAGS.replicate,
            formats=tuple(FLAGS.format),
            int8=FLAGS.int8,
            out=FLAGS.export_dir,
            overwrite=FLAGS.overwrite,
            force_retrain=FLAGS.retrain,
            dense=FLAGS.dense,
            latency_runs=FLAGS.latency_runs,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        cli.refuse(str(e))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
