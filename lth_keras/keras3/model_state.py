"""Reading and writing a Keras 3 lottery model's masks, weights and optimizer state.

The Keras 3 counterpart of lth_keras.model_state: the same functions, over the
variables of `LotteryMask` layers, through `keras.ops` and `Variable.assign` so they
work on every backend. Keys are "layer/weight" ('fc1/kernel', 'bn/moving_mean') as
on the tf_keras side; values are NumPy arrays. Nothing here decides what to prune.
"""

from typing import Dict, List, Mapping, Tuple

import keras
import numpy as np
from keras import ops

from lth_keras.keras3.masking import lottery_layers, weight_key, weights_by_key
from lth_keras.keras3.optimizer_state import refresh_pruned_slots
from lth_keras.keras3.sync import sync_state
from lth_keras.masks import Masks, check_same_keys
from lth_keras.snapshots import WeightSnapshot


def masked_variables(model) -> Dict[str, Tuple[keras.Variable, keras.Variable]]:
    """Weight key "layer/weight" -> (weight variable, mask variable) of each pruned weight.

    Example:
      >>> weight, mask = masked_variables(pruned)["fc1/kernel"]
    """
    sync_state(model)
    return {weight_key(layer, w): (w, m) for layer in lottery_layers(model) for w, m in layer.masked_pairs()}


def pruned_weights(model) -> List[Tuple[keras.layers.Layer, str, keras.Variable]]:
    """(wrapped layer, weight name, weight variable) of each pruned weight, in model order:
    the layer's `<name>_initializer` made the weight (what a random reinit draws from again).

    Example:
      >>> [(layer.name, name) for layer, name, _ in pruned_weights(pruned)][0]
      ('fc1', 'kernel')
    """
    sync_state(model)
    return [
        (layer.layer, name, getattr(layer.layer, name))
        for layer in lottery_layers(model)
        for name in layer.weight_names
    ]


def _pruned(model):
    """(key, LotteryMask) of each pruned weight, in model order."""
    return [(weight_key(layer, w), layer) for layer in lottery_layers(model) for w, _ in layer.masked_pairs()]


def layer_rates(model) -> Dict[str, float]:
    """Weight key -> the per-round pruning rate of its layer."""
    return {key: layer.pruning_rate for key, layer in _pruned(model)}


def pruning_groups(model) -> List[List[str]]:
    """Lists of weight keys ranked together: one per layerwise weight, one per global rate."""
    layerwise = [[key] for key, layer in _pruned(model) if layer.scope == "layerwise"]
    by_rate: Dict[float, List[str]] = {}
    for key, layer in _pruned(model):
        if layer.scope == "global":
            by_rate.setdefault(layer.pruning_rate, []).append(key)
    return layerwise + list(by_rate.values())


def _numpy(values) -> Dict[str, np.ndarray]:
    return {key: ops.convert_to_numpy(value) for key, value in values.items()}


def get_masks(model) -> Masks:
    """The model's current masks, as `lth_keras.masks.Masks`."""
    return Masks(_numpy({key: mask for key, (_, mask) in masked_variables(model).items()}))


def get_stored_weights(model) -> Dict[str, np.ndarray]:
    """Weight key -> what a pruned weight's variable holds (exactly 0 where pruned)."""
    return _numpy({key: weight for key, (weight, _) in masked_variables(model).items()})


def get_effective_weights(model) -> Dict[str, np.ndarray]:
    """Weight key -> weight * mask, the values the forward pass uses."""
    return _numpy({key: weight.value * mask.value for key, (weight, mask) in masked_variables(model).items()})


def apply_masks_to_weights(model, only_multiplied_in_forward: bool = False) -> None:
    """Sets every pruned weight's stored value to exactly 0 (weight <- weight * mask); with
    `only_multiplied_in_forward`, only those of layers that multiply by the mask in `call`
    (the others' must be 0 already: the callback checks it rather than hiding it)."""
    sync_state(model)
    for layer in lottery_layers(model):
        if layer.multiply_in_forward or not only_multiplied_in_forward:
            for weight, mask in layer.masked_pairs():
                weight.assign(weight.value * mask.value)


def set_masks(model, masks: Mapping[str, np.ndarray]) -> None:
    """Assigns `masks` to the model and zeroes the weights they prune.

    The compiled optimizer's slots of those weights (momentum, Adam's moments) go back to
    their freshly built values there too: a pruned weight's gradient is 0, and with fresh
    slots the update of it is 0 as well, so it stays exactly 0 without an optimizer reset.
    Raises ValueError naming the layer when a key is missing or extra, or a shape differs.

    Example:
      >>> set_masks(pruned, lth_keras.magnitude_prune(weights, get_masks(pruned), rates, groups))
    """
    variables = masked_variables(model)
    masks = masks if isinstance(masks, Masks) else Masks(masks)
    masks.check_matches({key: tuple(weight.shape) for key, (weight, _) in variables.items()})
    for key, (_, mask) in variables.items():
        mask.assign(masks[key])
    apply_masks_to_weights(model)
    refresh_pruned_slots(model, {id(weight): masks[key] for key, (weight, _) in variables.items()})


def snapshot_variables(model) -> Dict[str, keras.Variable]:
    """Weight key -> variable for every weight a snapshot holds: all but masks and round marks.

    Batch-norm statistics are in; random seeds and metrics are not weights, so out.
    Keys come from layer names (a LotteryMask's: its layer's), so a snapshot fits any
    model built with the same layer names.
    """
    sync_state(model)
    own = {id(v) for layer in lottery_layers(model, require=False) for v in layer.bookkeeping_variables()}
    result = weights_by_key(model)
    covered = {id(v) for v in result.values()} | own
    stray = [v.path for v in model.weights if id(v) not in covered]
    if stray:
        raise ValueError(f"weights {stray} belong to no layer, so they could not be rewound")
    return result


def take_snapshot(model) -> WeightSnapshot:
    """A copy of every weight of `model` but its masks, by weight key (θ₀, θ_k)."""
    return WeightSnapshot(_numpy(snapshot_variables(model)))


def restore_snapshot(model, snapshot: Mapping[str, np.ndarray]) -> None:
    """Assigns a snapshot back to the model, bit for bit, then re-applies the masks.

    Raises ValueError naming the weight when the snapshot does not fit the model.
    """
    variables = snapshot_variables(model)
    check_same_keys(snapshot, variables, "weights")
    for key, variable in variables.items():
        if tuple(np.shape(snapshot[key])) != tuple(variable.shape):
            raise ValueError(
                f"weights do not fit this model: {key!r} has shape {tuple(np.shape(snapshot[key]))} "
                f"in the snapshot, {tuple(variable.shape)} in the model"
            )
    for key, variable in variables.items():
        variable.assign(snapshot[key])
    apply_masks_to_weights(model)
