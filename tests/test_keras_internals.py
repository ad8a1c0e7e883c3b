"""A private tf_keras / TensorFlow attribute lth_keras relies on, gone: a loud error, not a fall-back.

Each test simulates a release that renamed the attribute (monkeypatch) and checks that the
error names it and the installed tf_keras version; the legitimate cases where the attribute
is absent (a plain optimizer, a plain variable, a model with no graph) keep working.
"""

import warnings

import numpy as np
import pytest
import tensorflow as tf
from tf_keras.src.mixed_precision.autocast_variable import AutoCastVariable, create_autocast_variable

import lth_keras
from lth_keras.lottery_wrapper import KeepPrunedAtZero, _constrain, _resource_variables
from lth_keras.keras_internals import KerasInternalsChanged
from lth_keras.model_state import OptimizerReset, loss_scale_variables
from lth_keras.wrapping import lottery_rates
from tests.conftest import compile_model, dense_model

keras = lth_keras.keras


def _raises_naming(attribute: str):
    """pytest.raises for KerasInternalsChanged naming `attribute` and the tf_keras version."""
    return pytest.raises(KerasInternalsChanged, match=rf"{attribute}.*tf_keras {keras.__version__}")


def _dynamic_loss_scale_optimizer():
    optimizer = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.Adam())
    assert optimizer.dynamic
    return optimizer


def test_a_dynamic_loss_scale_without_its_weights_raises(monkeypatch):
    optimizer = _dynamic_loss_scale_optimizer()
    assert {v.name for v in loss_scale_variables(optimizer)} == {"current_loss_scale:0", "good_steps:0"}
    monkeypatch.delattr(optimizer._loss_scale, "_weights")
    with _raises_naming(r"LossScaleOptimizerV3\._loss_scale\._weights"):
        loss_scale_variables(optimizer)


def test_a_loss_scale_optimizer_without_its_loss_scale_raises_where_others_have_none(monkeypatch):
    assert loss_scale_variables(keras.optimizers.Adam()) == []
    static = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.Adam(), dynamic=False, initial_scale=8)
    assert loss_scale_variables(static) == []
    optimizer = _dynamic_loss_scale_optimizer()
    # A release that keeps the loss scale under another name, which its own `dynamic` reads:
    monkeypatch.setattr(type(optimizer), "dynamic", property(lambda self: True))
    monkeypatch.delattr(optimizer, "_loss_scale")
    with _raises_naming(r"LossScaleOptimizerV3\._loss_scale"):
        loss_scale_variables(optimizer)


def test_loss_scale_weights_that_no_longer_hold_the_counter_raise(monkeypatch):
    optimizer = _dynamic_loss_scale_optimizer()
    monkeypatch.setattr(optimizer._loss_scale, "_weights", {})  # the variables kept somewhere else
    with _raises_naming(r"counter.*_loss_scale\._weights"):
        loss_scale_variables(optimizer)


def test_a_legacy_optimizer_without_its_slot_creation_raises(monkeypatch):
    model = compile_model(dense_model(), optimizer=keras.optimizers.legacy.Adam())
    monkeypatch.delattr(keras.optimizers.legacy.Optimizer, "_create_all_weights")
    with _raises_naming(r"Adam\._create_all_weights"):
        OptimizerReset(model.optimizer, model.trainable_variables)


def test_model_outputs_without_keras_history_raise(monkeypatch):
    model = dense_model()
    assert lottery_rates(model, 0.2)["out"] == pytest.approx(0.1)
    for tensor in model.outputs:
        monkeypatch.delattr(tensor, "_keras_history")
    with _raises_naming(r"KerasTensor\._keras_history"):
        lottery_rates(model, 0.2)
    with _raises_naming("_keras_history"):
        lth_keras.prune_for_lottery(model)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.hidden = keras.layers.Dense(4, name="hidden")
        self.last = keras.layers.Dense(2, name="last")

    def call(self, inputs):
        return self.last(self.hidden(inputs))


def test_a_model_without_a_graph_takes_its_last_prunable_layer_as_output_and_says_so():
    model = _Subclassed()
    model(np.zeros((1, 3), np.float32))
    assert model.outputs is None  # nothing to walk, legitimately
    with pytest.warns(lth_keras.LotteryWarning, match=r"'last'.*layer_pruning_rates=\{'last': \.\.\.\}"):
        assert lottery_rates(model, 0.2) == {"hidden": 0.2, "last": pytest.approx(0.1)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", lth_keras.LotteryWarning)  # its rate given: nothing to say
        assert lottery_rates(model, 0.2, layer_pruning_rates={"last": 0.3}) == {"hidden": 0.2, "last": 0.3}
        assert lottery_rates(model, 0.2, exclude=["last"]) == {"hidden": 0.2}


def _ones():
    return tf.Variable(np.ones((2, 2), np.float32))


def test_the_mask_constraint_on_a_mixed_precision_weight_whose_variable_was_renamed_raises(monkeypatch):
    plain, wrapped = _ones(), create_autocast_variable(_ones())
    for weight in (plain, wrapped):  # what a constraint can serve: it takes
        assert _constrain(weight, _ones()) and isinstance(weight.constraint, KeepPrunedAtZero)
    # A release that keeps the variable behind an AutoCastVariable as `_inner`, not `_variable`:
    renamed = create_autocast_variable(_ones())
    renamed.__dict__["_inner"] = renamed.__dict__.pop("_variable")
    monkeypatch.setattr(AutoCastVariable, "__getattr__", lambda self, name: getattr(self._inner, name))
    monkeypatch.setattr(AutoCastVariable, "constraint", property(lambda self: self._inner.constraint))
    with _raises_naming(r"AutoCastVariable\._variable"):
        _constrain(renamed, _ones())


def test_a_distributed_weight_without_its_per_replica_variables_raises(monkeypatch):
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        weight = _ones()
    assert [id(v) for v in _resource_variables(weight)] == [id(v) for v in weight._values]
    monkeypatch.delitem(weight.__dict__, "_values")
    with _raises_naming(r"MirroredVariable\._values"):
        _resource_variables(weight)


def test_fuse_steps_on_a_model_without_is_compiled_raises(monkeypatch):
    model = compile_model(dense_model(), steps_per_execution=2)
    monkeypatch.delattr(model, "_is_compiled")
    with _raises_naming(r"Functional\._is_compiled"):
        lth_keras.fuse_steps(model)
