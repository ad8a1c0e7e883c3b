"""The paper's two controls for a ticket: random reinitialisation and random pruning."""

from typing import Mapping, Optional

import numpy as np

from lth_keras._keras import keras
from lth_keras.masks import Masks, random_masks_like
from lth_keras.model_state import (
    get_masks,
    masked_variables,
    restore_snapshot,
    set_masks,
)
from lth_keras.validation import check_non_negative_int
from lth_keras.wrapping import apply_masks_to_weights, lottery_layers, weight_name


def _fresh_initializer(layer, short_name: str, seed: int):
    """A new instance of the initializer `layer` used for `short_name`, seeded."""
    attribute = f"{short_name}_initializer"
    initializer = getattr(layer, attribute, None)
    if initializer is None:
        raise ValueError(
            f"layer {layer.name!r} has no `{attribute}`: cannot redraw its {short_name!r} weights"
        )
    config = keras.initializers.serialize(initializer)
    inner = config.get("config", {})
    if "seed" not in inner:
        raise ValueError(
            f"layer {layer.name!r}: initializer {type(initializer).__name__} takes no seed, "
            "so a redraw would not be reproducible"
        )
    inner["seed"] = seed
    return keras.initializers.deserialize(config)


def reinit(model, seed: int, masks: Optional[Mapping[str, np.ndarray]] = None) -> None:
    """Random-reinit control: keep the mask, redraw the surviving weights.

    Each pruned weight is drawn afresh from its own layer's initializer with a seed
    derived from `seed` and the layer's position; then the mask is applied. Other
    weights (biases, batch-norm) are left as they are. Same seed, same weights.

    Args:
      model: a model prepared with `prune_for_lottery`.
      seed: integer >= 0.
      masks: masks to set first; default the model's current masks.
    """
    seed = check_non_negative_int(seed, "seed")
    if masks is not None:
        set_masks(model, masks)
    index = 0
    for layer in lottery_layers(model):
        for weight, _, _ in layer.pruning_vars:
            name = weight_name(weight)
            initializer = _fresh_initializer(layer.layer, name, seed * 100003 + index)
            weight.assign(initializer(weight.shape, dtype=weight.dtype))
            index += 1
    apply_masks_to_weights(model)


def random_prune(
    model,
    theta_0: Mapping[str, np.ndarray],
    seed: int,
    masks: Optional[Mapping[str, np.ndarray]] = None,
) -> Masks:
    """Random-pruning control: a random mask with the ticket's per-layer counts, weights θ₀.

    Args:
      model: a model prepared with `prune_for_lottery`.
      theta_0: the initial weights (e.g. `callback.theta_0` or a loaded snapshot).
      seed: integer >= 0; same seed, same mask.
      masks: the ticket's masks whose counts to copy; default the model's current masks.

    Returns:
      The random masks now set on the model.
    """
    seed = check_non_negative_int(seed, "seed")
    masks = get_masks(model) if masks is None else Masks(masks)
    masks.check_matches({k: tuple(w.shape) for k, (w, _) in masked_variables(model).items()})
    random = random_masks_like(masks, seed)
    set_masks(model, random)
    restore_snapshot(model, theta_0)
    return random
