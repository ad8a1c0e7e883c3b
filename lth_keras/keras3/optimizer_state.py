"""A Keras 3 optimizer's freshly built state: to reset it, and to reset a pruned weight's slots.

The fresh values come from a new optimizer of the same config built on the model's
trainable variables, so they are right whenever they are asked for, even after training
began: zeros for Adam's moments, `initial_accumulator_value` for Adagrad's accumulators,
the initial scale and a zero counter for a `LossScaleOptimizer`. While it is built, each
slot it makes with `add_variable_from_reference` is noted with the weight it is for.
"""

from typing import Dict, List, NamedTuple, Optional

import keras
import numpy as np
from keras import ops

from lth_keras.keras3.sync import sync_state
from lth_keras.validation import check_non_negative_int


class FreshVariable(NamedTuple):
    variable: keras.Variable  # the optimizer's
    value: object  # its freshly built value: a number when uniform, else an array
    weight: Optional[keras.Variable]  # the model weight it is a slot of; None for the others


def _noting_slots(optimizer, slots: Dict[int, keras.Variable]) -> None:
    """Makes `optimizer` (and an inner one) note each slot it makes: slot id -> weight."""
    for each in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if each is None:
            continue
        make = each.add_variable_from_reference

        def noting(reference_variable, *args, _make=make, **kwargs):
            slot = _make(reference_variable, *args, **kwargs)
            slots[id(slot)] = reference_variable
            return slot

        each.add_variable_from_reference = noting


def schedule_classes(optimizer) -> Dict[str, type]:
    """The learning-rate schedule's class by its name, so a config naming an unregistered
    schedule (a user's own class) deserializes; {} for no optimizer or a constant rate."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    schedule = getattr(inner, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return {type(schedule).__name__: type(schedule)}
    return {}


# Keras 3's optimizers whose update of a weight is exactly 0 where its gradient is 0 and its
# slots are freshly built (elementwise rules, or a per-layer factor times one: Lamb, Adafactor),
# so a pruned weight stored as 0 stays 0. Not Muon (it orthogonalises a kernel's whole update),
# ScheduleFreeAdamW or MultiOptimizer; tests/keras3/test_keras3_masking_modes.py trains each.
ZERO_GRADIENT_KEEPS_ZERO = (
    "SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop",
    "Adagrad", "Adadelta", "Ftrl", "Lion", "Lamb", "Adafactor",
)  # fmt: skip


def keeps_zero_gradient_weights_at_zero(optimizer) -> bool:
    """True when `optimizer` (or a LossScaleOptimizer's inner one) is one of Keras's
    ZERO_GRADIENT_KEEPS_ZERO (a user's subclass may change the update; Keras's own backend
    versions, e.g. torch's Adam, may not) and keeps no moving average of the weights
    (`use_ema` writes the average into them)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    known = tuple(getattr(keras.optimizers, name) for name in ZERO_GRADIENT_KEEPS_ZERO)
    keras_own = type(optimizer).__module__.split(".")[0] == "keras"
    return isinstance(optimizer, known) and keras_own and not getattr(optimizer, "use_ema", False)


def fresh_state(optimizer, model) -> List[FreshVariable]:
    """Each variable of `optimizer` with its freshly built value (built on `model`'s variables)."""
    variables = model.trainable_variables
    if not optimizer.built:
        optimizer.build(variables)
    fresh = type(optimizer).from_config(optimizer.get_config(), custom_objects=schedule_classes(optimizer))
    slots: Dict[int, keras.Variable] = {}
    _noting_slots(fresh, slots)
    fresh.build(variables)
    if [v.shape for v in fresh.variables] != [v.shape for v in optimizer.variables]:
        raise ValueError(
            f"{type(optimizer).__name__} rebuilt from its config has other variables than the "
            "optimizer itself: cannot tell its freshly built state"
        )
    state = []
    for variable, new in zip(optimizer.variables, fresh.variables):
        value = ops.convert_to_numpy(new)
        uniform = value.size > 0 and np.all(value == value.flat[0])
        state.append(FreshVariable(variable, value.flat[0] if uniform else value, slots.get(id(new))))
    return state


def _full(variable, value):
    return ops.full(variable.shape, value, variable.dtype) if np.ndim(value) == 0 else value


class OptimizerReset:
    """Puts a Keras 3 optimizer back as freshly built for a model, step counter as asked.

    Args:
      optimizer: a Keras 3 optimizer (built here on the model's variables if it is not).
      model: the model it trains.

    Example:
      >>> reset = OptimizerReset(model.optimizer, model)
      >>> reset.reset(iterations=0)  # at the start of every round
    """

    def __init__(self, optimizer, model):
        self.optimizer, self._model = optimizer, model
        self._fresh = fresh_state(optimizer, model)

    def reset(self, iterations: int) -> None:
        """Every optimizer variable back to its fresh value, the step counter at `iterations`."""
        iterations = check_non_negative_int(iterations, "iterations")
        sync_state(self._model)
        for variable, value, _ in self._fresh:
            variable.assign(_full(variable, value))
        self.optimizer.iterations.assign(iterations)


def refresh_pruned_slots(model, masks: Dict[int, np.ndarray]) -> None:
    """Where a mask is 0, puts the slots of its weight (id -> mask) back to their fresh value.

    Does nothing for a model without a built optimizer (not compiled, or never trained).
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built:
        return
    sync_state(model)
    for variable, value, weight in fresh_state(optimizer, model):
        if weight is not None and id(weight) in masks:
            pruned = np.asarray(masks[id(weight)]) == 0
            variable.assign(ops.where(pruned, _full(variable, value), variable.value))
