"""lth_keras for Keras 3 models, on the TensorFlow, JAX and PyTorch backends.

Masks live in `LotteryMask` wrapper layers (see lth_keras/keras3/layers.py for why a
wrapper, not a variable constraint, and its two ways of masking). This package imports Keras 3
and NumPy only: under KERAS_BACKEND=jax or torch it loads no TensorFlow.

Example:
  import keras
  import lth_keras.keras3 as lth3
  pruned = lth3.prune_for_lottery(model, pruning_rate=0.2)
  theta_0 = lth3.take_snapshot(pruned)
  lth3.set_masks(pruned, masks)        # e.g. from lth_keras.masks.magnitude_prune
  lth3.restore_snapshot(pruned, theta_0)
  plain = lth3.strip(pruned)
"""

from lth_keras.keras3.graph import check_keras3_model, flat_layers
from lth_keras.keras3.layers import LotteryMask
from lth_keras.keras3.masking import (
    choose_masking,
    custom_objects,
    default_masking,
    load_model,
    lottery_layers,
    mark_round,
    marked_round,
    prune_for_lottery,
    strip,
    unwrapped,
    weight_key,
)
from lth_keras.keras3.model_state import (
    apply_masks_to_weights,
    get_effective_weights,
    get_masks,
    get_stored_weights,
    layer_rates,
    masked_variables,
    pruned_weights,
    pruning_groups,
    restore_snapshot,
    set_masks,
    snapshot_variables,
    take_snapshot,
)
from lth_keras.keras3.optimizer_state import OptimizerReset
from lth_keras.rates import SCOPES
from lth_keras.keras3.sync import sync_state
from lth_keras.keras3.weight_copy import WeightCopy

__all__ = [
    "LotteryMask",
    "OptimizerReset",
    "SCOPES",
    "WeightCopy",
    "apply_masks_to_weights",
    "check_keras3_model",
    "choose_masking",
    "custom_objects",
    "default_masking",
    "flat_layers",
    "get_effective_weights",
    "get_masks",
    "get_stored_weights",
    "layer_rates",
    "load_model",
    "lottery_layers",
    "mark_round",
    "marked_round",
    "masked_variables",
    "prune_for_lottery",
    "pruned_weights",
    "pruning_groups",
    "restore_snapshot",
    "set_masks",
    "snapshot_variables",
    "strip",
    "sync_state",
    "take_snapshot",
    "unwrapped",
    "weight_key",
]
