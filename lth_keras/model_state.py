"""Reading and writing a wrapped model's masks, weights and optimizer state.

This is the bridge between the Keras variables and the plain arrays of `masks.py`:
everything here reads or assigns variables; none of it decides what to prune.
"""

import numbers
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

from lth_keras._keras import keras
from lth_keras.keras_internals import internals_changed, private_attribute
from lth_keras.masks import Masks, check_same_keys
from lth_keras.random_state import random_state_variables
from lth_keras.snapshots import WeightSnapshot
from lth_keras.wrapping import (
    apply_masks_to_weights,
    flat_layers,
    lottery_layers,
    unwrapped,
    weight_key,
)


def masked_variables(model) -> Dict[str, tuple]:
    """Weight key "layer/weight" -> (weight variable, mask variable) of each pruned weight."""
    result = {}
    for layer in lottery_layers(model):
        for weight, mask, _ in layer.pruning_vars:
            key = weight_key(layer, weight)
            if key in result:
                raise ValueError(f"two pruned weights are both named {key!r}: give the layers unique names")
            result[key] = (weight, mask)
    return result


def layer_rates(model) -> Dict[str, float]:
    """Weight key -> the per-round pruning rate of its layer."""
    rates = {}
    for layer in lottery_layers(model):
        for weight, _, _ in layer.pruning_vars:
            rates[weight_key(layer, weight)] = layer.pruning_schedule.pruning_rate
    return rates


def pruning_groups(model):
    """Lists of weight keys ranked together: one per layerwise weight, one per global rate."""
    groups, global_groups = [], {}
    for layer in lottery_layers(model):
        schedule = layer.pruning_schedule
        for weight, _, _ in layer.pruning_vars:
            key = weight_key(layer, weight)
            if schedule.scope == "global":
                global_groups.setdefault(schedule.pruning_rate, []).append(key)
            else:
                groups.append([key])
    return groups + list(global_groups.values())


def get_masks(model) -> Masks:
    """The model's current masks."""
    return Masks({key: mask.numpy() for key, (_, mask) in masked_variables(model).items()})


def get_stored_weights(model) -> Dict[str, np.ndarray]:
    """Weight key -> the value a pruned weight's variable holds (0 where pruned, between steps)."""
    return {key: weight.numpy() for key, (weight, _) in masked_variables(model).items()}


def get_effective_weights(model) -> Dict[str, np.ndarray]:
    """Weight key -> weight * mask, the values the forward pass uses."""
    return {key: (w * m).numpy() for key, (w, m) in masked_variables(model).items()}


def set_masks(model, masks: Mapping[str, np.ndarray]) -> None:
    """Assigns `masks` to the model and zeroes the weights they prune.

    Raises ValueError naming the layer when a key is missing or extra, or a shape
    differs.
    """
    variables = masked_variables(model)
    masks = masks if isinstance(masks, Masks) else Masks(masks)
    masks.check_matches({k: tuple(w.shape) for k, (w, _) in variables.items()})
    for key, (_, mask) in variables.items():
        mask.assign(masks[key])
    apply_masks_to_weights(model)


def _bookkeeping_ids(model) -> set:
    ids = set()
    for layer in lottery_layers(model, require=False):
        ids.add(id(layer.pruning_step))
        for _, mask, threshold in layer.pruning_vars:
            ids.update((id(mask), id(threshold)))
    return ids


def snapshot_variables(model) -> Dict[str, tf.Variable]:
    """Weight key "layer/weight" -> variable for every weight a snapshot holds.

    Keys come from layer names (the inner layer's for a wrapper), not from variable
    names, so a snapshot fits any model built with the same layer names.
    """
    result = {}
    for layer in flat_layers(model):
        inner = unwrapped(layer)
        for variable in inner.weights:
            key = weight_key(inner, variable)
            if key in result and result[key] is not variable:
                raise ValueError(f"two model weights are both named {key!r}: give the layers unique names")
            result[key] = variable
    covered = {id(v) for v in result.values()} | _bookkeeping_ids(model)
    stray = [v.name for v in model.weights if id(v) not in covered]
    if stray:
        raise ValueError(f"weights {stray} belong to no layer, so they could not be rewound")
    return result


def take_snapshot(model) -> WeightSnapshot:
    """Copies every weight of `model` except masks and pruning counters."""
    return WeightSnapshot({name: v.numpy() for name, v in snapshot_variables(model).items()})


def check_snapshot_fits(snapshot: Mapping[str, np.ndarray], shapes: Mapping[str, tuple]) -> None:
    """Raises ValueError naming the weights when the snapshot's keys or shapes differ from `shapes`."""
    check_same_keys(snapshot, shapes, "weights")
    for name, shape in shapes.items():
        if tuple(snapshot[name].shape) != tuple(shape):
            raise ValueError(
                f"weights do not fit this model: {name!r} has shape {tuple(snapshot[name].shape)} "
                f"in the snapshot, {tuple(shape)} in the model"
            )


def restore_snapshot(model, snapshot: Mapping[str, np.ndarray]) -> None:
    """Assigns a snapshot back to the model, then re-applies the masks.

    Raises ValueError naming the weight when the snapshot does not fit the model.
    """
    variables = snapshot_variables(model)
    check_snapshot_fits(snapshot, {name: variable.shape for name, variable in variables.items()})
    for name, variable in variables.items():
        variable.assign(snapshot[name])
    apply_masks_to_weights(model)


class WeightCopy:
    """A copy of a model's weights (those a snapshot holds) in variables beside them.

    For a state the model must get back to within a round, such as the weights at the
    early-stop step: copying is one assign per weight on the device, no round trip through
    host memory. `copies` (a list of variables) goes into a `tf.train.Checkpoint` as it is.
    """

    def __init__(self, model):
        variables = snapshot_variables(model)
        self._keys, self._model_variables = list(variables), list(variables.values())
        with model.distribute_strategy.scope():
            self.copies = [
                tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name=f"weight_copy_{i}")
                for i, v in enumerate(self._model_variables)
            ]

    def capture(self) -> None:
        """Copies the model's weights now."""
        for copy, variable in zip(self.copies, self._model_variables):
            copy.assign(variable)

    def swap(self) -> None:
        """Exchanges the model's weights with the copy's (swapping twice puts both back)."""
        for copy, variable in zip(self.copies, self._model_variables):
            current = variable.read_value()
            variable.assign(copy)
            copy.assign(current)

    def arrays(self) -> Dict[str, np.ndarray]:
        """Weight key -> the copy's value."""
        return {key: copy.numpy() for key, copy in zip(self._keys, self.copies)}


def optimizer_variables(optimizer):
    """All state variables of a tf_keras optimizer, new or legacy."""
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


def loss_scale_variables(optimizer):
    """A mixed-precision LossScaleOptimizer's dynamic loss scale and its counter; [] otherwise.

    tf_keras gives the scale only as a tensor, not its variable, so both are read from the
    loss scale's private state; a static loss scale and a plain optimizer have none.
    """
    if not (isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer) and optimizer.dynamic):
        return []
    path = "_loss_scale._weights"
    variables = list(private_attribute(optimizer, path, "the variables of the dynamic loss scale").values())
    if not any(variable is optimizer.dynamic_counter for variable in variables):  # renamed or moved
        what = "the dynamic loss scale's counter among its variables"
        raise internals_changed(what, f"{type(optimizer).__name__}.{path}")
    return variables


def learning_rate_value(optimizer) -> Optional[float]:
    """The optimizer's learning rate as a number; None when a LearningRateSchedule sets it.

    A schedule is a function of the step counter, which each round rewinds, so it replays;
    a plain rate is whatever was last assigned to it.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a mixed-precision LossScaleOptimizer's
    value = inner.get_config().get("learning_rate")
    return float(value) if isinstance(value, numbers.Real) else None


class OptimizerReset:
    """Remembers an optimizer's freshly built state so it can be put back exactly.

    Slot variables start as constants (zeros for Adam and SGD momentum, an initial
    accumulator for Adagrad); only that constant is kept, not a copy of each slot. Under
    mixed precision the dynamic loss scale goes back to its initial value too.
    """

    def __init__(self, optimizer, trainable_variables, strategy=None):
        self.optimizer = optimizer
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            if isinstance(optimizer, keras.optimizers.legacy.Optimizer):  # has no public build
                private_attribute(optimizer, "_create_all_weights", "a legacy optimizer's slot creation")(
                    trainable_variables
                )
            else:
                optimizer.build(trainable_variables)
        self._initial = {}
        for variable in optimizer_variables(optimizer) + loss_scale_variables(optimizer):
            if variable is optimizer.iterations:
                continue
            value = variable.numpy()
            flat = value.ravel()
            uniform = flat.size > 0 and np.all(flat == flat[0])
            self._initial[id(variable)] = (variable, flat[0] if uniform else value.copy())

    def reset(self, iterations: int) -> None:
        """Puts every slot back to its initial value and the step counter at `iterations`."""
        for variable, initial in self._initial.values():
            variable.assign(
                tf.fill(variable.shape, tf.constant(initial, variable.dtype))
                if np.ndim(initial) == 0
                else initial
            )
        self.optimizer.iterations.assign(iterations)


class ModelReset:
    """Remembers a compiled model's state now, to put it back: what building and compiling it
    again would give, without tracing and compiling its steps again.

    Every variable of the model (weights, masks, pruning bookkeeping, the random layers'
    generators) and the optimizer's freshly built state (see `OptimizerReset`), with the
    optimizer's step counter at 0. The weights are held in host memory, one copy.
    """

    def __init__(self, model):
        variables = list(model.variables) + random_state_variables(model)
        self._values = [(variable, variable.numpy()) for variable in variables]
        strategy = model.distribute_strategy
        self._optimizer = OptimizerReset(model.optimizer, model.trainable_variables, strategy)

    def reset(self) -> None:
        for variable, value in self._values:
            variable.assign(value)
        self._optimizer.reset(0)
