"""The round engine's adapter for tf_keras models on tfmot's wrappers (see lth_keras.adapters).

Most of it is lth_keras.model_state and lth_keras.wrapping, which read and write those
models' variables; this module adds what the callback used to do with tf_keras itself.
"""

import functools
from typing import Dict, Set

import numpy as np

from lth_keras._keras import keras
from lth_keras.evaluation import compiled_evaluation
from lth_keras.model_state import (  # noqa: F401  (the adapter's functions, by these names)
    OptimizerReset,
    WeightCopy,
    get_effective_weights,
    get_masks,
    get_stored_weights,
    layer_rates,
    learning_rate_value,
    masked_variables,
    pruning_groups,
    restore_snapshot,
    set_masks,
    take_snapshot,
)
from lth_keras import adapters, neighbours
from lth_keras.wrapping import (  # noqa: F401
    apply_masks_to_weights,
    enable_training,
    lottery_layers,
    mark_round,
    marked_round,
    prune_for_lottery,
    strip,
    weight_name,
)


def check_prepared(model) -> None:
    lottery_layers(model)


def iterations(optimizer) -> int:
    return int(optimizer.iterations.numpy())


def set_iterations(optimizer, count: int) -> None:
    optimizer.iterations.assign(count)


def steps_per_execution(model) -> int:
    return int(model._steps_per_execution.numpy())


def raw_masks(model) -> Dict[str, np.ndarray]:
    """The mask variables' values as they are, without Masks' check that they are 0/1."""
    return {key: mask.numpy() for key, (_, mask) in masked_variables(model).items()}


def constrained_layers(model) -> Set[str]:
    """Names of the layers whose pruned weights a variable constraint keeps at 0 (the others
    multiply by the mask in `call`, before each use)."""
    return {layer.layer.name for layer in lottery_layers(model) if not getattr(layer, "masks_in_call", True)}


def begin_fit(model, optimizer) -> None:
    """Nothing to choose: each wrapper masks the one way it was built to."""


def end_fit(model) -> None:
    """Nothing to put back (see begin_fit)."""


def pruned_weights(model):
    """(wrapped layer, weight name, weight variable) of each pruned weight, in model order."""
    return [
        (layer.layer, weight_name(weight), weight)
        for layer in lottery_layers(model)
        for weight, _, _ in layer.pruning_vars
    ]


def optimizer_reset(model, optimizer) -> OptimizerReset:
    return OptimizerReset(optimizer, model.trainable_variables, model.distribute_strategy)


def weight_copy(model) -> WeightCopy:
    return WeightCopy(model)


def weights_finite(model) -> bool:
    return all(np.isfinite(w.numpy()).all() for w in model.weights)


def evaluate(model, data, batch_size: int) -> Dict[str, float]:
    """Metrics of `data`: (x, y) arrays in one compiled call, a dataset by `model.evaluate`."""

    def run():
        if isinstance(data, (tuple, list)):
            return compiled_evaluation(model, *data, batch_size)()
        return model.evaluate(data, verbose=0, return_dict=True)

    return adapters.evaluate_keeping_metrics(model, run, lambda variable: variable.numpy())


callbacks_beside = functools.partial(neighbours.callbacks_beside, callbacks=keras.callbacks)
check_callbacks_beside = functools.partial(neighbours.check_callbacks_beside, callbacks=keras.callbacks)
is_progress_bar = functools.partial(neighbours.is_progress_bar, callbacks=keras.callbacks)
