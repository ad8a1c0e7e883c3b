"""The round engine's adapter for Keras 3 models, on any backend (see lth_keras.adapters).

Most of it is lth_keras.keras3, which reads and writes those models' variables (each of
its functions first brings a JAX model's in-flight state back into its variables). Every
pruned weight is masked in its layer's `call` (`LotteryMask`), so no optimizer constraint
is relied on, and the mask variables are state the compiled step reads, not constants.
For the callback's `fit` with an optimizer that keeps zero-gradient weights at 0, the
layers mask only the gradients and read the stored weights (`begin_fit`); those are the
"constrained" layers whose pruned weights the callback checks are still 0.
"""

import functools
import numbers
from typing import Dict, Optional, Set

import keras
import numpy as np
from keras import ops

from lth_keras import adapters, neighbours
from lth_keras.keras3 import (  # noqa: F401  (the adapter's functions, by these names)
    OptimizerReset,
    WeightCopy,
    choose_masking,
    default_masking,
    get_effective_weights,
    get_masks,
    get_stored_weights,
    layer_rates,
    lottery_layers,
    mark_round,
    marked_round,
    masked_variables,
    pruned_weights,
    pruning_groups,
    prune_for_lottery,
    restore_snapshot,
    set_masks,
    strip,
    sync_state,
    take_snapshot,
)
from lth_keras.keras3 import apply_masks_to_weights as _apply_masks


def check_prepared(model) -> None:
    lottery_layers(model)


def iterations(optimizer) -> int:
    return int(ops.convert_to_numpy(optimizer.iterations))


def set_iterations(optimizer, count: int) -> None:
    optimizer.iterations.assign(count)


def steps_per_execution(model) -> int:
    return int(model.steps_per_execution)


def raw_masks(model) -> Dict[str, np.ndarray]:
    """The mask variables' values as they are, without Masks' check that they are 0/1."""
    return {key: ops.convert_to_numpy(mask) for key, (_, mask) in masked_variables(model).items()}


def apply_masks_to_weights(model, only_masked_in_call: bool = False) -> None:
    _apply_masks(model, only_multiplied_in_forward=only_masked_in_call)


def constrained_layers(model) -> Set[str]:
    """The layers whose forward pass reads their stored weights, which must hold 0 where pruned."""
    return {layer.layer.name for layer in lottery_layers(model) if not layer.multiply_in_forward}


def begin_fit(model, optimizer) -> None:
    choose_masking(model, optimizer)


def end_fit(model) -> None:
    default_masking(model)


def enable_training(model) -> None:
    """Nothing to switch on: LotteryMask has no inference-only state."""


def learning_rate_value(optimizer) -> Optional[float]:
    """The learning rate as a number; None when a LearningRateSchedule sets it (it replays)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    value = inner.get_config().get("learning_rate")
    return float(value) if isinstance(value, numbers.Real) else None


def optimizer_reset(model, optimizer) -> OptimizerReset:
    return OptimizerReset(optimizer, model)


def weight_copy(model) -> WeightCopy:
    return WeightCopy(model)


def weights_finite(model) -> bool:
    sync_state(model)
    return all(np.isfinite(ops.convert_to_numpy(w)).all() for w in model.weights)


def evaluate(model, data, batch_size: int) -> Dict[str, float]:
    """Metrics of `data`, (x, y) arrays or a dataset, by `model.evaluate`."""
    sync_state(model)

    def run():
        if isinstance(data, (tuple, list)):
            return model.evaluate(*data, batch_size=batch_size, verbose=0, return_dict=True)
        return model.evaluate(data, verbose=0, return_dict=True)

    return adapters.evaluate_keeping_metrics(model, run, ops.convert_to_numpy)


callbacks_beside = functools.partial(neighbours.callbacks_beside, callbacks=keras.callbacks)
check_callbacks_beside = functools.partial(neighbours.check_callbacks_beside, callbacks=keras.callbacks)
is_progress_bar = functools.partial(neighbours.is_progress_bar, callbacks=keras.callbacks)
