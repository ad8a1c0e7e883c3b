"""WeightCopy for Keras 3: a model's weights copied into variables beside them, on the device."""

from typing import Dict

import keras
import numpy as np
from keras import ops

from lth_keras.keras3.model_state import snapshot_variables
from lth_keras.keras3.sync import sync_state


class WeightCopy:
    """A copy of the weights a snapshot holds, in variables of their own (not the model's).

    For a state the model must get back to within a round (the weights at the early-stop
    step): capturing and swapping are assigns on the device, no trip through host memory.

    Example:
      >>> best = WeightCopy(model); best.capture()
      >>> ...; best.swap()  # the model has the captured weights, the copy the others
    """

    def __init__(self, model):
        variables = snapshot_variables(model)
        self._model = model
        self._keys, self._variables = list(variables), list(variables.values())
        self.copies = [
            keras.Variable(ops.zeros(v.shape, v.dtype), trainable=False, name=f"weight_copy_{i}")
            for i, v in enumerate(self._variables)
        ]

    def capture(self) -> None:
        """Copies the model's weights now."""
        sync_state(self._model)
        for copy, variable in zip(self.copies, self._variables):
            copy.assign(ops.copy(variable.value))

    def swap(self) -> None:
        """Exchanges the model's weights with the copy's (swapping twice puts both back)."""
        sync_state(self._model)
        for copy, variable in zip(self.copies, self._variables):
            current = ops.copy(variable.value)
            variable.assign(ops.copy(copy.value))
            copy.assign(current)

    def arrays(self) -> Dict[str, np.ndarray]:
        """Weight key -> the copy's value."""
        return {key: ops.convert_to_numpy(copy) for key, copy in zip(self._keys, self.copies)}
