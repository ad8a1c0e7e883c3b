"""Exporting a ticket's trained model as a small deployable file, checked against the model.

`lth_keras.export` is `export` here. (The module is not called export.py: importing a
submodule `lth_keras.export` would set the package attribute `lth_keras.export` to the
module, hiding the function.)

    tflite        TFLite flatbuffer with the converter's sparsity optimisation: pruned
                  weights are not stored (int8=True: dynamic-range int8 weights on top)
    saved_model   a TensorFlow SavedModel directory with a `serving_default` signature
    keras         a `.keras` file of the stripped tf_keras model

`export` strips the lottery wrappers (pruned weights exactly 0), writes the format to a
temporary name beside `path`, reads it back with the format's runtime and compares its
outputs with the Keras model's on `check_inputs`; only a file that agrees (float formats:
within float tolerance; int8: any finite outputs, the difference reported) is renamed to
`path`. An existing `path` is refused unless `overwrite=True`.

A ticket directory (`round_<n>/`) holds masks and the weights to rewind to, not the weights
training reached, so exporting one needs `round_model`, a function from the directory to
the trained model. For the suites' runs, `python -m experiments.export` finds it (from the
round's checkpoint, or by retraining the round as the run did); the core cannot, since it
knows neither the suites' models nor their run layout.

A Keras 3 model (any backend) is stripped by lth_keras.keras3 and written as `keras` (its
`.keras` file, read back by Keras 3) or `saved_model` (Keras 3's backend-neutral
`model.export(path, format="tf_saved_model")`, which needs TensorFlow installed); TFLite's
converter takes tf_keras models only.

Example:
  >>> exported = lth_keras.export(model, "ticket.tflite", format="tflite")
  >>> exported.max_difference  # largest |output - Keras output| on the check inputs
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Callable, Dict, Optional, Union

import numpy as np

from lth_keras import storage
from lth_keras.exported import FormatNotInstalled, load_exported, tflite_interpreter_class

FORMATS = ("tflite", "saved_model", "keras")
# Agreement of a float export with the Keras model: |difference| <= TOLERANCE * max(1, |output|).
TOLERANCE = 1e-4
CHECK_EXAMPLES = 64  # random inputs used when no `check_inputs` are given


@dataclasses.dataclass
class Exported:
    """A written, verified export.

    Attributes:
      path: where it is.
      format: one of FORMATS.
      int8: whether the weights are dynamic-range int8 (tflite only).
      max_difference: the largest |exported output - Keras output| over the check inputs.
      model: the stripped tf_keras model it was made from.
    """

    path: str
    format: str
    int8: bool
    max_difference: float
    model: object


class ExportMismatch(ValueError):
    """The exported file's outputs differ from the Keras model's beyond float tolerance."""


# --- writers, per framework and format ---------------------------------------------------


def _write_tflite(model, path: str, int8: bool) -> None:
    import tensorflow as tf

    tflite_interpreter_class()  # refuses before converting when the file could not be checked
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] + (
        [tf.lite.Optimize.DEFAULT] if int8 else []
    )
    storage.save_bytes(path, converter.convert())


def _write_saved_model(model, path: str, int8: bool) -> None:
    import tensorflow as tf

    spec = tf.TensorSpec(
        (None,) + tuple(model.input_shape[1:]), model.inputs[0].dtype, name=model.input_names[0]
    )
    serve = tf.function(lambda x: {model.output_names[0]: model(x, training=False)}, input_signature=[spec])
    tf.saved_model.save(model, path, signatures={"serving_default": serve})


def _write_keras(model, path: str, int8: bool) -> None:
    model.save(path)


def _write_keras3_saved_model(model, path: str, int8: bool) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise FormatNotInstalled(
            "saved_model: Keras 3's model.export writes a TensorFlow SavedModel, and TensorFlow is "
            "not installed here (pip install tensorflow); format='keras' needs nothing more"
        )
    model.export(path, format="tf_saved_model", verbose=False)


def _strip_tf_keras(model):
    from lth_keras import wrapping

    if wrapping.lottery_layers(model, require=False):
        return wrapping.strip(model)
    return model


def _strip_keras3(model):
    import lth_keras.keras3 as lth3

    return lth3.strip(model) if lth3.lottery_layers(model, require=False) else model


def _tf_keras_outputs(model, x: np.ndarray) -> np.ndarray:
    return model(x, training=False).numpy()


def _keras3_outputs(model, x: np.ndarray) -> np.ndarray:
    from keras import ops

    return ops.convert_to_numpy(model(x, training=False))


@dataclasses.dataclass(frozen=True)
class _Adapter:
    """How one framework's models are made plain, run, and written in each format it offers."""

    plain: Callable[[object], object]
    outputs: Callable[[object, np.ndarray], np.ndarray]
    writers: Dict[str, Callable[[object, str, bool], None]]


_ADAPTERS = {
    "tf_keras": _Adapter(
        _strip_tf_keras,
        _tf_keras_outputs,
        {"tflite": _write_tflite, "saved_model": _write_saved_model, "keras": _write_keras},
    ),
    "keras": _Adapter(
        _strip_keras3, _keras3_outputs, {"saved_model": _write_keras3_saved_model, "keras": _write_keras}
    ),
}


def _adapter(model, format: str) -> _Adapter:
    from lth_keras import adapters

    framework = adapters.framework_of(model)
    if framework not in _ADAPTERS:
        raise TypeError(
            f"`model` must be a tf_keras or Keras 3 Model or a round directory, got {type(model).__name__}"
        )
    adapter = _ADAPTERS[framework]
    if format not in adapter.writers:
        raise ValueError(
            f"format={format!r} is not offered for a {'Keras 3' if framework == 'keras' else framework} "
            f"model: TFLite's converter takes tf_keras models only; use one of {sorted(adapter.writers)}"
        )
    return adapter


# --- writing safely --------------------------------------------------------------------


def refuse_existing(path: str, overwrite: bool) -> None:
    """Raises FileExistsError naming `path` if something is there and `overwrite` is False."""
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists: nothing was written; choose another path, or overwrite it")


@contextlib.contextmanager
def _staged(path: str):
    """Yields a temporary path beside `path`; on success the result replaces `path`.

    A file replaces a file atomically; otherwise the old entry is moved aside first.
    Nothing of the temporary output is left behind, whatever happens.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    staging = tempfile.mkdtemp(dir=directory, prefix=".tmp-export-")
    try:
        staged = os.path.join(staging, os.path.basename(path))
        yield staged
        if os.path.isdir(path) or os.path.isdir(staged):
            if os.path.lexists(path):
                os.rename(path, os.path.join(staging, ".replaced"))
            os.rename(staged, path)
        else:
            os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_inputs(model, check_inputs: Optional[np.ndarray]) -> np.ndarray:
    if check_inputs is not None:
        return np.asarray(check_inputs, dtype=np.float32)
    shape = (CHECK_EXAMPLES,) + tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _verify(adapter, model, staged: str, format: str, int8: bool, inputs: np.ndarray, path: str) -> float:
    """The largest output difference of the staged file from `model`; raises ExportMismatch."""
    expected = np.concatenate(
        [adapter.outputs(model, inputs[i : i + 1000]) for i in range(0, len(inputs), 1000)]
    )
    keras3 = adapter is _ADAPTERS["keras"]
    got = load_exported(staged, format, keras3=keras3).predict(inputs)
    difference = np.abs(got - expected)
    largest = float(difference.max()) if difference.size else 0.0
    if not np.all(np.isfinite(got)):
        raise ExportMismatch(f"the {format} export for {path} gives non-finite outputs: nothing was written")
    if not int8 and np.any(difference > TOLERANCE * np.maximum(1.0, np.abs(expected))):
        raise ExportMismatch(
            f"the {format} export for {path} differs from the Keras model by up to {largest:.3g} "
            f"(tolerance {TOLERANCE:g} relative): nothing was written"
        )
    return largest


# --- the API -----------------------------------------------------------------------------


def export(
    model_or_round_dir: Union[object, str, os.PathLike],
    path: Union[str, os.PathLike],
    format: str = "tflite",
    *,
    int8: bool = False,
    overwrite: bool = False,
    check_inputs: Optional[np.ndarray] = None,
    round_model: Optional[Callable[[str], object]] = None,
) -> Exported:
    """Writes a model (or a round's trained model) as a deployable file, checked against it.

    Args:
      model_or_round_dir: a lottery model (`prune_for_lottery`; stripped here), a plain tf_keras
        or Keras 3 model, or a round directory of a run (then `round_model` is needed).
      path: the file to write (a directory for "saved_model").
      format: "tflite", "saved_model" or "keras".
      int8: tflite only: dynamic-range int8 weights on top of the sparsity optimisation.
      overwrite: replace whatever is at `path`; without it an existing path is refused.
      check_inputs: inputs (a batch) on which the export must agree with the Keras model;
        default CHECK_EXAMPLES random normal inputs of the model's input shape.
      round_model: (round directory) -> the trained model of that round.

    Returns:
      What was written (`Exported`).

    Raises:
      ValueError: an unknown format, int8 without tflite, tflite for a Keras 3 model, a directory
        without `round_model`; FormatNotInstalled (a ValueError) naming the missing package;
        ExportMismatch when the written file disagrees with the model (nothing is kept).
      FileExistsError: `path` exists and `overwrite` is False.

    Example:
      >>> lth_keras.export(model, "ticket.tflite", int8=True)
    """
    from lth_keras.validation import check_bool, check_choice

    check_choice(format, FORMATS, "format")
    int8, overwrite = check_bool(int8, "int8"), check_bool(overwrite, "overwrite")
    if int8 and format != "tflite":
        raise ValueError(
            f"int8=True: dynamic-range int8 is a TFLite option; format={format!r} keeps float weights"
        )
    path = os.fspath(path)
    refuse_existing(path, overwrite)
    model = model_or_round_dir
    if isinstance(model, (str, os.PathLike)):
        if round_model is None:
            raise ValueError(
                f"{os.fspath(model)} is a directory: a ticket holds masks and rewind weights, not trained "
                "weights. Pass the trained model, or round_model= (directory -> trained model); for the "
                "suites' runs, `python -m experiments.export` finds the trained model"
            )
        model = round_model(os.fspath(model))
    adapter = _adapter(model, format)
    plain = adapter.plain(model)
    inputs = _check_inputs(plain, check_inputs)
    with _staged(path) as staged:
        adapter.writers[format](plain, staged, int8)
        largest = _verify(adapter, plain, staged, format, int8, inputs, path)
    return Exported(path, format, int8, largest, plain)


__all__ = ["Exported", "ExportMismatch", "FORMATS", "FormatNotInstalled", "export"]
