"""A run's checkpoint of its model, optimizer and callback, for tf_keras and Keras 3 alike.

Both are TensorFlow checkpoints, written and listed by `tf.train.CheckpointManager`, so the
layout, the manifest and the integrity checks know one format. A tf_keras model and its
optimizer are trackable: the checkpoint holds them directly. A Keras 3 model's variables
live on its backend (JAX arrays, torch tensors), so its checkpoint holds a TensorFlow copy
of each (`_Mirror`): filled from the model just before a save, read back into it just
after a restore. Keras 3 keeps its random layers' state (SeedGenerator) in `model.variables`,
so a resumed run draws the same dropout masks.
"""

from typing import Any, Dict, Sequence

import numpy as np
import tensorflow as tf

from lth_keras import adapters


class RunCheckpoint:
    """The checkpoint of `model`, its optimizer (unless `optimizer=False`) and `items` (the
    callback's `checkpoint_items()`: name -> variables).

    `checkpoint` is the tf.train.Checkpoint to save or restore; call `before_save()` just
    before saving it and `after_restore()` just after restoring it.
    """

    def __init__(self, model, items: Dict[str, Any] = None, optimizer: bool = True):
        parts = {"model": model, **(items or {})}
        if optimizer:
            parts["optimizer"] = model.optimizer
        self._mirrors = []
        if adapters.framework_of(model) == "keras":
            parts = {name: self._mirror(part) for name, part in parts.items()}
            self._model = model
        self.checkpoint = tf.train.Checkpoint(**parts)

    def _mirror(self, part) -> "_Mirror":
        variables = part.variables if hasattr(part, "variables") else part  # a model, optimizer or list
        mirror = _Mirror(list(variables))
        self._mirrors.append(mirror)
        return mirror

    def before_save(self) -> None:
        if self._mirrors:
            from lth_keras.keras3 import sync_state

            sync_state(self._model)  # JAX: the step's state back into the variables first
        for mirror in self._mirrors:
            mirror.pull()

    def after_restore(self) -> None:
        for mirror in self._mirrors:
            mirror.push()


class _Mirror(tf.Module):
    """TensorFlow variables holding a copy of some Keras 3 variables, in their order."""

    def __init__(self, variables: Sequence):
        super().__init__()
        self._originals = variables
        self.copies = [tf.Variable(_numpy(v), trainable=False) for v in variables]

    def pull(self) -> None:
        for copy, variable in zip(self.copies, self._originals):
            copy.assign(_numpy(variable))

    def push(self) -> None:
        for copy, variable in zip(self.copies, self._originals):
            variable.assign(copy.numpy())


def _numpy(variable) -> np.ndarray:
    from keras import ops

    return ops.convert_to_numpy(variable)


def restore_model(model, path: str) -> None:
    """Reads only the model's variables (weights, masks) from the run checkpoint at `path`."""
    saved = RunCheckpoint(model, optimizer=False)
    saved.checkpoint.restore(path).expect_partial()
    saved.after_restore()
