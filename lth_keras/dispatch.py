"""The public functions that take a model, for a model of either Keras.

Each hands the model to its framework's own function: lth_keras.wrapping and
lth_keras.model_state for tf_keras models (tfmot's wrappers), lth_keras.keras3 for Keras 3
models on any backend. Only that framework is imported.
"""

from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from lth_keras import adapters
from lth_keras.masks import Masks
from lth_keras.snapshots import WeightSnapshot


def prune_for_lottery(
    model,
    pruning_rate: float = 0.2,
    output_pruning_rate: Optional[float] = None,
    conv_pruning_rate: Optional[float] = None,
    layer_pruning_rates: Optional[Mapping[str, float]] = None,
    scope: str = "layerwise",
    exclude: Iterable[str] = (),
    criterion: Optional[str] = None,
):
    """Returns a copy of `model` ready for a lottery run (see README, "Preparing the model").

    A tf_keras model gets tfmot's wrappers (`lth_keras.wrapping.prune_for_lottery`), a Keras 3
    model `LotteryMask` layers (`lth_keras.keras3.prune_for_lottery`); both take these
    arguments and refuse bad ones alike. `criterion` is refused: the mask criterion is
    `LotteryTicketCallback(criterion=...)`'s, which holds the rewind point it compares with.

    Example:
      >>> model = lth_keras.prune_for_lottery(model, pruning_rate=0.2)
    """
    if criterion is not None:
        raise TypeError(
            f"`criterion`={criterion!r}: the mask criterion is chosen by the round engine, "
            f"LotteryTicketCallback(criterion={criterion!r}), which holds the rewind point the "
            "criteria compare with; prune_for_lottery sets only rates and scope"
        )
    return adapters.for_model(model).prune_for_lottery(
        model,
        pruning_rate=pruning_rate,
        output_pruning_rate=output_pruning_rate,
        conv_pruning_rate=conv_pruning_rate,
        layer_pruning_rates=layer_pruning_rates,
        scope=scope,
        exclude=exclude,
    )


def strip(model):
    """A plain copy of a lottery model of either Keras, pruned weights exactly 0."""
    return adapters.for_model(model).strip(model)


def get_masks(model) -> Masks:
    """The model's current masks."""
    return adapters.for_model(model).get_masks(model)


def set_masks(model, masks: Mapping[str, np.ndarray]) -> None:
    """Assigns `masks` to the model and zeroes the weights they prune."""
    adapters.for_model(model).set_masks(model, masks)


def take_snapshot(model) -> WeightSnapshot:
    """Copies every weight of `model` except masks and pruning bookkeeping."""
    return adapters.for_model(model).take_snapshot(model)


def get_effective_weights(model) -> Dict[str, np.ndarray]:
    """Weight key -> weight * mask, the values the forward pass uses."""
    return adapters.for_model(model).get_effective_weights(model)
