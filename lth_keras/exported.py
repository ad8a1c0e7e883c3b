"""An exported model read back from its file: run it, list its parameters, measure it.

`load_exported(path, format)` opens what `lth_keras.export` wrote with the runtime that
serves that format (the TFLite interpreter, TensorFlow's SavedModel loader, tf_keras) and
reads the parameters back from the file itself: a TFLite flatbuffer's constant tensors,
sparse ones decoded from the converter's compressed format and int8 ones dequantized.
`measure` gives the figures the export command prints: size on disk (raw and gzipped),
parameters kept (non-zero), accuracy and single-example latency.

Example:
  >>> exported = load_exported("runs/ticket.tflite", "tflite")
  >>> figures = measure(exported, x_test, y_test, runs=500)
  >>> figures.size, figures.kept, figures.accuracy, figures.latency
"""

import dataclasses
import gzip
import io
import os
import statistics
import sys
import tarfile
import time
import warnings
from typing import Callable, Dict, List, Tuple

import numpy as np


TFLITE_INTERPRETER_PACKAGE = "ai-edge-litert"
_BATCH = 1000


class FormatNotInstalled(ValueError):
    """What a format needs to be written or read is not installed here; the message names it."""


# --- TFLite ---------------------------------------------------------------------------


def tflite_interpreter_class() -> Tuple[type, str]:
    """The TFLite interpreter class available here and its name: LiteRT's, else TensorFlow's.

    Raises FormatNotInstalled naming the package when neither is there (TensorFlow drops
    `tf.lite.Interpreter` in favour of the ai-edge-litert package).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert.interpreter.Interpreter"
    except ImportError:
        pass
    import tensorflow as tf

    interpreter = getattr(tf.lite, "Interpreter", None)
    if interpreter is None:
        raise FormatNotInstalled(
            f"format 'tflite' needs a TFLite interpreter to verify the exported file, and this TensorFlow "
            f"{tf.__version__} has no tf.lite.Interpreter: pip install {TFLITE_INTERPRETER_PACKAGE}"
        )
    return interpreter, "tf.lite.Interpreter"


def _tflite_schema():
    try:
        from tensorflow.lite.python import schema_py_generated
    except ImportError as e:
        raise FormatNotInstalled(
            f"reading a TFLite file back needs TensorFlow's TFLite schema (tensorflow.lite.python."
            f"schema_py_generated) and the flatbuffers package: {e}"
        ) from e
    return schema_py_generated


_TFLITE_DTYPES = {0: np.float32, 1: np.float16, 3: np.uint8, 9: np.int8}  # schema.TensorType: parameters


def _vector(union) -> np.ndarray:
    """The values of a sparse dimension's segments or indices (an Int32/Uint16/Uint8 vector)."""
    return np.asarray(union.values, dtype=np.int64)


def _densify(values: np.ndarray, shape: Tuple[int, ...], sparsity) -> np.ndarray:
    """A sparse TFLite tensor's dense values (the format of TFLite's FormatConverter::SparseToDense)."""
    order = list(sparsity.traversalOrder)
    block_map = list(sparsity.blockMap) if sparsity.blockMap is not None else []
    rank = len(shape)
    positions = np.zeros(1, dtype=np.int64)  # each leaf's position at the current level
    coordinates = np.zeros((1, 0), dtype=np.int64)  # and its index at every level so far
    for metadata in sparsity.dimMetadata:
        if metadata.format == 0:  # DENSE
            size = metadata.denseSize
            positions = (positions[:, None] * size + np.arange(size)[None, :]).ravel()
            index = np.tile(np.arange(size), len(coordinates))
            coordinates = np.repeat(coordinates, size, axis=0)
        else:  # SPARSE_CSR
            segments, indices = _vector(metadata.arraySegments), _vector(metadata.arrayIndices)
            counts = segments[positions + 1] - segments[positions]
            coordinates = np.repeat(coordinates, counts, axis=0)
            positions = np.concatenate(
                [np.arange(start, stop) for start, stop in zip(segments[positions], segments[positions + 1])]
                or [np.zeros(0, dtype=np.int64)]
            )
            index = indices[positions]
        coordinates = np.concatenate([coordinates, index[:, None]], axis=1)
    original = np.zeros((len(coordinates), rank), dtype=np.int64)
    for level, dimension in enumerate(order):
        if dimension < rank:
            original[:, dimension] = coordinates[:, level]
        else:  # a block dimension of original dimension block_map[...]
            block = dimension - rank
            size = sparsity.dimMetadata[level].denseSize
            original[:, block_map[block]] = original[:, block_map[block]] * size + coordinates[:, level]
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(original.T)] = values[: len(original)]
    return dense


def _dequantize(values: np.ndarray, quantization) -> np.ndarray:
    if quantization is None or quantization.scale is None or len(quantization.scale) == 0:
        return values
    scale = np.asarray(quantization.scale, dtype=np.float32)
    zero_point = np.asarray(
        quantization.zeroPoint if quantization.zeroPoint is not None else [0], dtype=np.float32
    )
    if scale.size > 1:  # per channel, along quantizedDimension
        shape = [1] * values.ndim
        shape[quantization.quantizedDimension] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (values.astype(np.float32) - zero_point) * scale


def tflite_parameters(content: bytes) -> Dict[str, np.ndarray]:
    """Every constant float or int8 tensor of a TFLite flatbuffer, dense and as float values.

    Keys are "<tensor index>:<tensor name>" (TFLite names need not be unique). Sparse
    tensors (the converter's sparsity optimisation) are decoded from their compressed form,
    int8 ones dequantized, so a pruned weight reads back as exactly 0.
    """
    schema = _tflite_schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    found = {}
    for subgraph in model.subgraphs:
        for index, tensor in enumerate(subgraph.tensors):
            dtype = _TFLITE_DTYPES.get(tensor.type)
            buffer = model.buffers[tensor.buffer]
            if getattr(buffer, "offset", 0) > 1:  # stored after the flatbuffer (models over 2 GB)
                raw = content[buffer.offset : buffer.offset + buffer.size]
            else:
                raw = b"" if buffer.data is None else np.asarray(buffer.data, dtype=np.uint8).tobytes()
            if dtype is None or not raw:
                continue  # not a parameter, or computed at run time
            values = np.frombuffer(raw, dtype=dtype)
            shape = tuple(int(d) for d in tensor.shape)
            if tensor.sparsity is not None:
                values = _densify(values, shape, tensor.sparsity)
            values = _dequantize(values.reshape(shape), tensor.quantization)
            found[f"{index}:{tensor.name.decode()}"] = np.asarray(values, dtype=np.float32)
    return found


# --- the exported model, read back ----------------------------------------------------


@dataclasses.dataclass
class ExportedModel:
    """An exported file opened with its format's runtime.

    Attributes:
      path, format: what was read.
      runtime: what runs it, in words (e.g. "tf.lite.Interpreter, XNNPACK delegate").
      predict_one: one example with a batch dimension of 1 -> its outputs (a numpy array).
      predict_batch: a batch of examples -> their outputs.
      parameters: name -> the parameter's values as stored in the file.
    """

    path: str
    format: str
    runtime: str
    predict_one: Callable[[np.ndarray], np.ndarray]
    predict_batch: Callable[[np.ndarray], np.ndarray]
    parameters: Dict[str, np.ndarray]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The outputs for every example of `x`."""
        return np.concatenate([self.predict_batch(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)])


def _load_tflite(path: str) -> ExportedModel:
    interpreter_class, name = tflite_interpreter_class()
    with open(path, "rb") as f:
        content = f.read()
    resolvers = sys.modules[interpreter_class.__module__].OpResolverType
    # The default delegate (XNNPACK) is the fast path; it refuses some kernels (e.g. sparse
    # int8 fully connected), which then run on TFLite's built-in kernels.
    for resolver, kernels in (
        (resolvers.AUTO, "XNNPACK delegate"),
        (resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES, "built-in kernels"),
    ):
        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice: chosen knowingly
            warnings.simplefilter("ignore")
            interpreter = interpreter_class(model_content=content, experimental_op_resolver_type=resolver)
        try:
            interpreter.allocate_tensors()
            break
        except RuntimeError:
            if resolver is not resolvers.AUTO:
                raise
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def predict_one(x):
        interpreter.set_tensor(source["index"], np.asarray(x, dtype=source["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])

    def predict_batch(x):
        return np.concatenate([predict_one(x[i : i + 1]) for i in range(len(x))])

    return ExportedModel(
        path, "tflite", f"{name}, {kernels}", predict_one, predict_batch, tflite_parameters(content)
    )


def _checkpoint_parameters(prefix: str) -> Dict[str, np.ndarray]:
    """The float variables of a TensorFlow checkpoint (a SavedModel's variables/)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    return {
        name: reader.get_tensor(name)
        for name in sorted(dtypes)
        if dtypes[name].is_floating and "_CHECKPOINTABLE_OBJECT_GRAPH" not in name
    }


def _load_saved_model(path: str) -> ExportedModel:
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    (name, spec), *_ = serve.structured_input_signature[1].items()

    def predict_batch(x):
        outputs = serve(**{name: tf.constant(x, dtype=spec.dtype)})
        return next(iter(outputs.values())).numpy()

    parameters = _checkpoint_parameters(os.path.join(path, "variables", "variables"))
    return ExportedModel(
        path,
        "saved_model",
        "TensorFlow SavedModel, serving_default",
        predict_batch,
        predict_batch,
        parameters,
    )


def _load_keras(path: str) -> ExportedModel:
    import tensorflow as tf

    from lth_keras._keras import keras

    model = keras.models.load_model(path, compile=False)
    call = tf.function(lambda x: model(x, training=False))

    def predict_batch(x):
        return call(tf.constant(x)).numpy()

    parameters = {w.name: w.numpy() for w in model.weights}
    return ExportedModel(
        path, "keras", "tf_keras, model call in a tf.function", predict_batch, predict_batch, parameters
    )


LOADERS: Dict[str, Callable[[str], ExportedModel]] = {
    "tflite": _load_tflite,
    "saved_model": _load_saved_model,
    "keras": _load_keras,
}


def _load_keras3(path: str) -> ExportedModel:
    import keras
    from keras import ops

    model = keras.models.load_model(path, compile=False)

    def predict_batch(x):
        return ops.convert_to_numpy(model(x, training=False))

    parameters = {w.path: ops.convert_to_numpy(w) for w in model.weights}
    runtime = f"Keras 3 ({keras.backend.backend()}), model call"
    return ExportedModel(path, "keras", runtime, predict_batch, predict_batch, parameters)


def load_exported(path: str, format: str, keras3: bool = False) -> ExportedModel:
    """Opens a file (or SavedModel directory) that `lth_keras.export` wrote in `format`;
    `keras3`: a `.keras` file of a Keras 3 model (read by Keras 3, not tf_keras)."""
    from lth_keras.validation import check_choice

    check_choice(format, tuple(LOADERS), "format")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no exported model at {path}")
    return (_load_keras3 if keras3 and format == "keras" else LOADERS[format])(path)


# --- figures ----------------------------------------------------------------------------


@dataclasses.dataclass
class Figures:
    """What an exported model costs and does, measured on this machine.

    Attributes:
      size: bytes on disk (a directory: its files together).
      gzip_size: bytes gzip-compressed (a directory: as one gzipped tar).
      parameters: values of the parameters stored in the file.
      kept: of them, the non-zero ones.
      accuracy: top-1 accuracy on the given examples.
      latency: median seconds for one example, over `runs` calls.
      runs: how many calls the median is over.
      runtime: what ran the model.
    """

    size: int
    gzip_size: int
    parameters: int
    kept: int
    accuracy: float
    latency: float
    runs: int
    runtime: str


def sizes(path: str) -> Tuple[int, int]:
    """(bytes on disk, bytes gzip-compressed) of a file or a directory."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
        return len(data), len(gzip.compress(data, mtime=0))
    raw, archive = 0, io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for root, _, names in sorted(os.walk(path)):
            for name in sorted(names):
                file_path = os.path.join(root, name)
                raw += os.path.getsize(file_path)
                tar.add(file_path, arcname=os.path.relpath(file_path, path))
    return raw, len(archive.getvalue())


def latencies(predict_one: Callable[[np.ndarray], np.ndarray], x: np.ndarray, runs: int, warmup: int = 10):
    """Seconds each of `runs` single-example calls took (examples of `x` in turn), after `warmup`."""
    times: List[float] = []
    for i in range(warmup + runs):
        example = x[i % len(x)][None]
        start = time.perf_counter()
        predict_one(example)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def measure(exported: ExportedModel, x: np.ndarray, y: np.ndarray, runs: int = 500) -> Figures:
    """Size, parameters kept, accuracy on (x, y) and median single-example latency of `exported`."""
    from lth_keras.validation import check_positive_int

    runs = check_positive_int(runs, "runs")
    raw, compressed = sizes(exported.path)
    values = [np.asarray(v) for v in exported.parameters.values()]
    accuracy = float(np.mean(np.argmax(exported.predict(x), axis=-1) == np.asarray(y)))
    return Figures(
        size=raw,
        gzip_size=compressed,
        parameters=sum(v.size for v in values),
        kept=sum(int(np.count_nonzero(v)) for v in values),
        accuracy=accuracy,
        latency=statistics.median(latencies(exported.predict_one, x, runs)),
        runs=runs,
        runtime=exported.runtime,
    )
