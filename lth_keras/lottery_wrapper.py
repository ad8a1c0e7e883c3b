"""LotteryPruneLowMagnitude: tfmot's pruning wrapper, masking where it costs least.

tfmot's `PruneLowMagnitude.call` does four things at every training step: it increments
its step counter, asserts that counter is positive, asks the schedule whether to
recompute the mask (inside a `tf.cond`), and assigns weight * mask to the weight before
the layer reads it. A lottery ticket's mask changes only between rounds, which the
callback does itself, so the first three are not needed. The fourth is needed, but not
there: this wrapper gives each pruned weight a variable constraint instead, which every
Keras optimizer applies right after its update (`weight <- weight * mask`). Under XLA
that multiply fuses into the optimizer's own update of the weight, so masking costs one
read of the mask per step instead of a separate read-modify-write of the weight (see
benchmarks/step_time.py). The stored weights are then exactly zero where pruned after
every step, not only once the next forward pass has masked them.

Where a constraint cannot serve, the wrapper masks in `call` as tfmot does: embeddings
(their gradients are sparse, and Keras's legacy optimizers refuse constraints on sparse
updates) and variables of a kind it does not know how to constrain (not a `tf.Variable`).

Everything else (the mask and threshold variables, `pruning_vars`, `strip_pruning`,
saving and loading) is tfmot's, inherited unchanged.
"""

import inspect

import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from lth_keras._keras import keras
from lth_keras.keras_internals import internals_changed, private_attribute

WRAPPER_NAME_PREFIX = "prune_low_magnitude_"


class KeepPrunedAtZero:
    """A variable constraint: the weight times its mask, after the weight's own constraint."""

    def __init__(self, mask, inner=None):
        self.mask = mask
        self.inner = inner

    def __call__(self, weight):
        if self.inner is not None:
            weight = self.inner(weight)
        return weight * self.mask


def _resource_variables(variable):
    """The plain resource variables behind a (mixed-precision, distributed) Keras variable."""
    variable = getattr(variable, "_variable", variable)  # AutoCastVariable; a plain variable has none
    if isinstance(variable, tf.distribute.DistributedValues):
        return list(private_attribute(variable, "_values", "a distributed weight's per-replica variables"))
    return [variable]


def _constrain(weight, mask) -> bool:
    """Gives `weight` the mask constraint; False if its kind of variable is not known."""
    components = _resource_variables(weight)
    if not all(isinstance(v, tf.Variable) for v in components):
        return False
    constraint = weight.constraint
    if not isinstance(constraint, KeepPrunedAtZero):  # built twice: keep one mask constraint
        constraint = KeepPrunedAtZero(mask, constraint)
    for component in components:
        component._constraint = constraint
    _check_constraint_set(weight, components, constraint)
    return True


def _check_constraint_set(weight, components, constraint) -> None:
    """Raises KerasInternalsChanged unless `weight` and its variables now report `constraint`.

    The constraint is set through private attributes; had one been renamed, it would land
    on the wrong object and the optimizer would leave pruned weights free to grow again.
    """
    if weight.constraint is not constraint or any(v.constraint is not constraint for v in components):
        raise internals_changed(
            "the variables behind a weight, whose constraint the optimizer applies",
            f"{type(weight).__name__}._variable / ._values / ._constraint",
        )


@keras.utils.register_keras_serializable(package="lth_keras")
class LotteryPruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
    """A `PruneLowMagnitude` whose mask only the lottery callback changes.

    Pruned weights are kept at exactly zero by a variable constraint that the optimizer
    applies after each update (or, where that cannot serve, by masking in `call`); the
    layer itself reads its weights unchanged. It never recomputes a mask itself.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        # tfmot names a wrapper after its class; keep tfmot's names for our subclass.
        self._name = WRAPPER_NAME_PREFIX + self.layer.name
        self.masks_in_call = isinstance(layer, keras.layers.Embedding)

    def build(self, input_shape):
        super().build(input_shape)
        if not self.masks_in_call:
            constrained = [_constrain(weight, mask) for weight, mask, _ in self.pruning_vars]
            self.masks_in_call = not all(constrained)

    def call(self, inputs, training=None, **kwargs):
        if self.masks_in_call:
            self.add_update(self._mask_weights())
        if training is not None and "training" in inspect.signature(self.layer.call).parameters:
            kwargs["training"] = training
        return self.layer.call(inputs, **kwargs)

    def _mask_weights(self):
        """weight <- weight * mask for each pruned weight, before the layer reads it."""
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Mirrored weights must be updated through the strategy: tfmot's op does that.
            return self.pruning_obj.weight_mask_op()
        return tf.group([weight.assign(weight * mask) for weight, mask, _ in self.pruning_vars])
