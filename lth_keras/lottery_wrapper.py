"""LotteryPruneLowMagnitude: tfmot's pruning wrapper without its per-step bookkeeping.

tfmot's `PruneLowMagnitude.call` does four things at every training step: it increments
its step counter, asserts that counter is positive, asks the schedule whether to
recompute the mask (inside a `tf.cond`), and multiplies the weights by the mask. A
lottery ticket's mask changes only between rounds, which the callback does itself, so
only the last of these is needed. The other three cost a few small ops per layer per
step, which on a small network is a large part of the step (see benchmarks/step_time.py).

Everything else (the mask and threshold variables, `pruning_vars`, `strip_pruning`,
saving and loading) is tfmot's, inherited unchanged.
"""

import inspect

import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from lth_keras._keras import keras

WRAPPER_NAME_PREFIX = "prune_low_magnitude_"


@keras.utils.register_keras_serializable(package="lth_keras")
class LotteryPruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
    """A `PruneLowMagnitude` whose mask only the lottery callback changes.

    Each call multiplies the wrapped layer's prunable weights by their masks (so the
    weights the layer uses are exactly zero where pruned, also after an optimizer step
    that moved them) and calls the layer. It never recomputes a mask itself.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        # tfmot names a wrapper after its class; keep tfmot's names for our subclass.
        self._name = WRAPPER_NAME_PREFIX + self.layer.name

    def call(self, inputs, training=None, **kwargs):
        self.add_update(self._mask_weights())
        if training is not None and "training" in inspect.signature(self.layer.call).parameters:
            kwargs["training"] = training
        return self.layer.call(inputs, **kwargs)

    def _mask_weights(self):
        """weight <- weight * mask for each pruned weight."""
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Mirrored weights must be updated through the strategy: tfmot's op does that.
            return self.pruning_obj.weight_mask_op()
        return tf.group([weight.assign(weight * mask) for weight, mask, _ in self.pruning_vars])
