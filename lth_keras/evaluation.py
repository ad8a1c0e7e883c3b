"""Evaluating held-out arrays in one compiled call: what `model.evaluate` returns, without its set-up.

The paper's protocol evaluates 5,000 validation examples every 100 iterations. Keras's
`evaluate` builds a data handler, an iterator, a callback list and a progress bar at every
call; for LeNet-300-100 here that was about a third of each evaluation, and evaluation
itself a third of a round. `CompiledEvaluation` holds the arrays as batches in tensors and
runs the model's own `test_step` on each inside one `tf.function`, each step compiled with
XLA when the model is, as Keras compiles it: the same batches through the same steps, so the
metrics are bit-identical to `model.evaluate(x, y, batch_size=...)`.
"""

import weakref
from typing import Dict

import numpy as np
import tensorflow as tf

from lth_keras._keras import keras
from lth_keras.keras_internals import private_attribute


class CompiledEvaluation:
    """`model.evaluate(x, y, batch_size=batch_size, return_dict=True)`, as one compiled call.

    Like `evaluate`, a call resets the model's metrics and leaves them holding the
    evaluation's values. It follows the model's compilation: compiling again retraces it.
    Models spread over several replicas are evaluated by Keras's own `evaluate`, which
    splits each batch between them.

    Example:
      >>> validation = CompiledEvaluation(model, x_val, y_val, batch_size=1000)
      >>> validation()  # {'loss': ..., 'accuracy': ...}
    """

    def __init__(self, model, x, y, batch_size: int):
        self.model = model
        self.arrays = (x, y)
        self.batch_size = batch_size
        self._batches = None  # built on first use: (full batches stacked, the short last one or None)
        self._compiled_for = None  # (compiled loss, jit_compile) the function was traced for
        self._function = None

    def __call__(self) -> Dict[str, float]:
        model = self.model
        if model.distribute_strategy.num_replicas_in_sync != 1 or not _metrics_built(model):
            x, y = self.arrays
            return model.evaluate(x, y, batch_size=self.batch_size, verbose=0, return_dict=True)
        jit_compile = bool(private_attribute(model, "_jit_compile", "whether a model compiles with XLA"))
        compiled_for = (model.compiled_loss, jit_compile)
        if self._function is None or self._compiled_for != compiled_for:
            self._function = self._trace(jit_compile)
            self._compiled_for = compiled_for
        model.reset_metrics()  # as evaluate does, in Python: each metric's own reset_state
        return {name: float(value) for name, value in self._function().items()}

    def _trace(self, jit_compile: bool):
        full, last = self._batches or self._make_batches()
        model = self.model
        step = tf.function(lambda batch: model.test_step(batch), jit_compile=jit_compile, autograph=False)

        def run_all():
            logs = step(_batch(full, 0))  # outside the loop: gives the loop its logs' structure
            count = tf.nest.flatten(full)[0].shape[0]
            _, logs = tf.while_loop(
                lambda index, _: index < count,
                lambda index, _: (index + 1, step(_batch(full, index))),
                (tf.constant(1), logs),
            )
            return step(last) if last is not None else logs

        return tf.function(run_all, autograph=False)

    def _make_batches(self):
        """(x, y) as tensors of stacked full batches and the short last batch (None if there is
        none), cast as Keras's data adapter casts arrays (floating point to floatx)."""
        x, y = (_as_keras_feeds_it(a) for a in self.arrays)
        count = len(x) // self.batch_size
        cut = count * self.batch_size
        if count == 0:  # a single short batch stands in as the one full batch
            full, last = (x[None], y[None]), None
        else:
            full = tuple(a[:cut].reshape((count, self.batch_size) + a.shape[1:]) for a in (x, y))
            last = (x[cut:], y[cut:]) if cut < len(x) else None
        self._batches = (_constants(full), _constants(last))
        return self._batches


def _as_keras_feeds_it(array) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(keras.backend.floatx()) if np.issubdtype(array.dtype, np.floating) else array


def _constants(batch):
    return None if batch is None else tuple(tf.constant(part) for part in batch)


def _batch(stacked, index):
    return tuple(part[index] for part in stacked)


def _metrics_built(model) -> bool:
    """True once the model's loss and metrics exist (after its first training or evaluation step):
    a compiled call must not be the one that creates their variables."""
    return bool(model.metrics) and all(metric.built for metric in model.metrics)


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {key: evaluation}


def compiled_evaluation(model, x, y, batch_size: int) -> CompiledEvaluation:
    """The model's `CompiledEvaluation` of these arrays, made once: callbacks that follow one
    another on a model (a control's rounds) share its traced function."""
    evaluations = _CACHE.setdefault(model, {})
    key = (id(x), id(y), batch_size)
    if key not in evaluations or evaluations[key].arrays[0] is not x or evaluations[key].arrays[1] is not y:
        evaluations[key] = CompiledEvaluation(model, x, y, batch_size)
    return evaluations[key]
