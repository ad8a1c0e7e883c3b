"""LotteryMask: a Keras 3 wrapper layer that keeps its pruned weights out of training.

The wrapper owns one 0/1 mask per pruned weight (a non-trainable variable of the wrapper,
so it is saved with the model and flows through a JAX train step as state, like any
non-trainable weight). In `call` it runs the wrapped layer inside a `keras.StatelessScope`
that hands the layer, wherever it reads a pruned weight, one of:

- `weight * mask` (`multiply_in_forward`, the default): the forward pass uses the masked
  weight whatever the variable holds, and the gradient of a pruned weight is exactly 0.
- the weight as stored, with its gradient multiplied by the mask (`mask_gradients_only`):
  the same values and gradients, bit for bit, while the pruned weights are stored as 0,
  without the multiply in every forward pass (on LeNet-300-100 under JAX about a fifth of
  a step; benchmarks/backends.py). On JAX and TensorFlow a custom gradient does it; on
  torch, which runs eagerly, a gradient hook on each weight's parameter, and the wrapper
  then calls its layer directly. `LotteryTicketCallback` switches its model's layers to
  this for its `fit` when the optimizer keeps a weight whose gradient is 0 at exactly 0
  (`optimizer_state.keeps_zero_gradient_weights_at_zero`; set_masks and OptimizerReset
  give pruned weights fresh slots), and checks at each round's end that they stayed 0.

The way is read when a step is traced, so the callback sets it before its `fit` traces
one and puts the default back at the end; a new mask never retraces (the mask is a
variable, read as state).

Why not a variable constraint (`weight <- weight * mask` after each optimizer step, which
the tf_keras side uses): under JAX the optimizer's update runs in a stateless scope that
holds only the trainable and optimizer variables, so a constraint reading the mask gets a
constant baked in at trace time (while `fit` runs, Keras even empties the variable, so it
reads the mask's initial ones): masks set after the step was compiled would not apply.
benchmarks/keras3_masking.py measures both: on TensorFlow they cost the same (within the
noise of this machine, 0-4% over the unwrapped model); under JAX the constraint is cheaper
but keeps no new mask; on torch, which runs eagerly, the wrapper costs more (LeNet +18%
against +5%; a small conv net +6% against +5%).
"""

import functools
import sys
from typing import Dict, List, Tuple

import keras
from keras import ops

from lth_keras.keras3.graph import refuse_other_keras
from lth_keras.rates import checked_scope
from lth_keras.validation import check_rate

# The weights pruned of each supported layer type, by attribute name; biases never.
PRUNED_WEIGHTS = (
    (keras.layers.Dense, ("kernel",)),
    (keras.layers.Conv1D, ("kernel",)),
    (keras.layers.Conv2D, ("kernel",)),
    (keras.layers.Conv3D, ("kernel",)),
    (keras.layers.Embedding, ("embeddings",)),
)
CONV_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
SUPPORTED = (
    "lth_keras.keras3 prunes the kernels of Dense, Conv1D, Conv2D and Conv3D layers and Embedding tables"
)


@ops.custom_gradient
def with_masked_gradient(weight, mask):
    """`weight` itself, whose gradient is multiplied by `mask` (and none flows to the mask)."""

    def gradient(*args, upstream=None):
        if upstream is None:  # JAX and TensorFlow pass it alone; torch by keyword, after the inputs
            (upstream,) = args
        return ops.multiply(upstream, mask), None

    return weight, gradient


def _times_mask(mask, gradient):
    return gradient * mask.value


def pruned_weight_names(layer) -> Tuple[str, ...]:
    """The attribute names of the weights `layer` would have pruned; () for other layers."""
    if isinstance(layer, (keras.Model, LotteryMask)):
        return ()
    for layer_type, names in PRUNED_WEIGHTS:
        if isinstance(layer, layer_type):
            return names
    return ()


@keras.saving.register_keras_serializable(package="lth_keras")
class LotteryMask(keras.layers.Wrapper):
    """Masks the prunable weights of a Dense, Conv1D/2D/3D or Embedding layer.

    Args:
      layer: the layer to wrap (built or not).
      pruning_rate: fraction of the layer's surviving weights a round removes, in [0, 1).
      scope: 'layerwise' (the layer ranked alone) or 'global' (ranked with every layer
        of the same rate).

    Example:
      >>> masked = LotteryMask(keras.layers.Dense(4, name="fc"), pruning_rate=0.2)
      >>> masked.build((None, 3)); [w.path for w, _ in masked.masked_pairs()]
      ['fc/kernel']
    """

    def __init__(self, layer, pruning_rate: float, scope: str = "layerwise", **kwargs):
        kwargs.setdefault("name", f"lottery_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_rate = check_rate(pruning_rate, "pruning_rate")
        self.scope = checked_scope(scope)
        self.weight_names = pruned_weight_names(layer)
        if not self.weight_names:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no prunable weights: {SUPPORTED}"
            )
        self.supports_masking = layer.supports_masking
        self._masks: Dict[str, keras.Variable] = {}
        # Not in the config: a runtime choice, read when a step is traced (see the module's docstring).
        self._multiply_in_forward = True
        self._gradient_hooks = ()

    def build(self, input_shape=None):
        super().build(input_shape)
        for name in self.weight_names:
            weight = getattr(self.layer, name)
            self._masks[name] = self.add_weight(
                shape=weight.shape,
                initializer="ones",
                dtype=weight.dtype,
                trainable=False,
                name=f"{name}_mask",
            )
        # Round r of a lottery run marks r + 1 here (0: never trained in one), saved with the model.
        self.round_mark = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="round"
        )

    def masked_pairs(self) -> List[Tuple[keras.Variable, keras.Variable]]:
        """(weight variable, mask variable) of each pruned weight, in `weight_names` order."""
        return [(getattr(self.layer, name), self._masks[name]) for name in self.weight_names]

    def bookkeeping_variables(self) -> List[keras.Variable]:
        """The wrapper's own variables: the masks and the round mark (never in a snapshot)."""
        return [*self._masks.values(), self.round_mark]

    @property
    def multiply_in_forward(self) -> bool:
        """Whether `call` multiplies the pruned weights by their masks (else only their gradients)."""
        return self._multiply_in_forward

    def mask_gradients_only(self, only: bool) -> None:
        """Masks only the gradients of the stored weights (True), or multiplies the weights by
        their masks in the forward pass (False, the default). Read when a step is traced.

        On torch, which runs eagerly, a gradient hook on each weight's parameter masks its
        gradient (reading the mask variable when it runs), and `call` runs the layer directly.
        """
        self._multiply_in_forward = not only
        for handle in self._gradient_hooks:
            handle.remove()
        self._gradient_hooks = ()
        if only and keras.backend.backend() == "torch":
            self._gradient_hooks = tuple(
                weight.value.register_hook(functools.partial(_times_mask, mask))
                for weight, mask in self.masked_pairs()
            )

    def __call__(self, *args, **kwargs):
        if self._gradient_hooks:  # torch, gradients only: the hooks mask them, and the wrapped
            self._refuse_other_keras()  # layer's own __call__ does all a call needs (each costs)
            return self.layer(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def _refuse_other_keras(self):
        if sys.modules.get("keras", keras) is not keras:  # keras.config.set_backend since it was made
            refuse_other_keras(self, "layer")

    def call(self, inputs, *args, **kwargs):
        self._refuse_other_keras()
        mask_weight = ops.multiply if self._multiply_in_forward else with_masked_gradient
        masked = {id(weight): mask_weight(weight.value, mask.value) for weight, mask in self.masked_pairs()}
        # The scope replaces every variable of the layer, not only the masked ones: inside it,
        # a variable it does not map reads its eager value, which a JAX train step does not
        # pass in (a nested scope does not see the outer scope's mapping).
        mapping = [(v, masked.get(id(v), v.value)) for v in self.layer.variables]
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            outputs = self.layer(inputs, *args, **kwargs)
        for loss in scope.losses:  # the wrapped layer's activity regularizer
            self.add_loss(loss)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_mask(self, inputs, previous_mask=None):
        return self.layer.compute_mask(inputs, previous_mask)

    def get_config(self):
        return {**super().get_config(), "pruning_rate": self.pruning_rate, "scope": self.scope}
