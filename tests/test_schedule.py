"""LotteryTicketSchedule: never prunes in a step, serializes, validates eagerly."""

import pytest
import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_schedule

import lth_keras
from lth_keras import LotteryTicketSchedule

keras = lth_keras.keras


def test_is_a_tfmot_schedule_that_never_prunes():
    schedule = LotteryTicketSchedule(0.2)
    assert isinstance(schedule, pruning_schedule.PruningSchedule)
    for step in (0, 1, 100, 10**9):
        should_prune, sparsity = schedule(tf.constant(step, tf.int64))
        assert not bool(should_prune)
        assert float(sparsity) == pytest.approx(0.2)


@pytest.mark.parametrize("rate,scope", [(0.2, "layerwise"), (0.0, "global"), (0.95, "layerwise")])
def test_config_round_trip(rate, scope):
    schedule = LotteryTicketSchedule(rate, scope)
    config = schedule.get_config()
    assert LotteryTicketSchedule.from_config(config["config"]) == schedule
    # The registered name lets Keras's generic deserializer find the class.
    assert keras.utils.deserialize_keras_object(config) == schedule


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_rates_are_refused_naming_the_value(rate):
    with pytest.raises(ValueError, match="pruning_rate"):
        LotteryTicketSchedule(rate)


@pytest.mark.parametrize("rate", ["0.2", None, True])
def test_non_numbers_are_refused(rate):
    with pytest.raises(TypeError, match="pruning_rate"):
        LotteryTicketSchedule(rate)


def test_bad_scope_is_refused():
    with pytest.raises(ValueError, match="'local'"):
        LotteryTicketSchedule(0.2, scope="local")
