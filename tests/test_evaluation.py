"""Evaluation in one compiled call, and the early-stop step's test metrics from a copy of its weights.

Both must give exactly what the protocol gave before: `model.evaluate`'s metrics, and the
test metrics of the weights at the step of minimum validation loss.
"""

import numpy as np
import pytest
import tensorflow as tf

import lth_keras
from lth_keras.evaluation import CompiledEvaluation, compiled_evaluation
from lth_keras.model_state import ModelReset, WeightCopy, optimizer_variables, take_snapshot
from tests.conftest import compile_model, dense_data, dense_model

keras = lth_keras.keras


def _trained(jit_compile=False, **compile_kwargs):
    model = compile_model(
        lth_keras.prune_for_lottery(dense_model()), jit_compile=jit_compile, **compile_kwargs
    )
    x, y = dense_data()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "jit"])
@pytest.mark.parametrize(
    "examples,batch_size", [(100, 32), (96, 32), (20, 32)], ids=["short last", "even", "one short"]
)
def test_metrics_are_bit_identical_to_model_evaluate(jit_compile, examples, batch_size):
    model = _trained(jit_compile)
    x, y = dense_data(examples, seed=3)
    expected = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    assert CompiledEvaluation(model, x, y, batch_size)() == expected


def test_float64_inputs_are_cast_as_keras_casts_them():
    model = _trained()
    x, y = dense_data(70, seed=4)
    x = x.astype(np.float64) * 1.000000001  # not representable in float32: the cast matters
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert CompiledEvaluation(model, x, y, 32)() == expected


def test_follows_a_recompiled_model():
    model = _trained()
    x, y = dense_data(64, seed=5)
    evaluation = CompiledEvaluation(model, x, y, 32)
    assert set(evaluation()) == {"loss", "accuracy"}
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")],
    )
    model.fit(*dense_data(), batch_size=32, epochs=1, verbose=0)
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert set(expected) == {"loss", "accuracy", "top2"}
    assert evaluation() == expected


def test_one_evaluation_per_model_and_data():
    model = _trained()
    x, y = dense_data(64, seed=5)
    assert compiled_evaluation(model, x, y, 32) is compiled_evaluation(model, x, y, 32)
    assert compiled_evaluation(model, x, y, 16) is not compiled_evaluation(model, x, y, 32)
    assert compiled_evaluation(_trained(), x, y, 32) is not compiled_evaluation(model, x, y, 32)


def test_a_weight_copy_swaps_back_bit_for_bit():
    model = _trained()
    copy = WeightCopy(model)
    copy.capture()
    captured = take_snapshot(model)
    model.fit(*dense_data(), batch_size=32, epochs=1, verbose=0)
    trained = take_snapshot(model)
    copy.swap()
    for key, value in take_snapshot(model).items():
        np.testing.assert_array_equal(value, captured[key])
    copy.swap()
    for key, value in take_snapshot(model).items():
        np.testing.assert_array_equal(value, trained[key])


class OldProtocol(lth_keras.LotteryTicketCallback):
    """Evaluates the test data at every new early-stop candidate, as the callback used to."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tested_at_best = {}  # round -> test metrics of the last new best
        self.test_evaluations = 0

    def _evaluate(self, data=None, prefix="val_"):
        self.test_evaluations += prefix == "test_"
        return super()._evaluate(data, prefix)

    def _track(self, step, val_metrics):
        best = self.state.best
        super()._track(step, val_metrics)
        if self.state.best is not best and self.test_data is not None:
            self.tested_at_best[self.state.round] = self.model.evaluate(
                *self.test_data, batch_size=self.eval_batch_size, verbose=0, return_dict=True
            )


def _lottery(callback_kwargs, rounds=3):
    keras.utils.set_random_seed(0)
    model = compile_model(lth_keras.prune_for_lottery(dense_model()))
    ticket = OldProtocol(epochs_per_round=2, eval_every_steps=2, verbose=0, **callback_kwargs)
    model.fit(*dense_data(), batch_size=32, epochs=2 * rounds, callbacks=[ticket], verbose=0)
    return model, ticket


def test_early_stop_test_metrics_are_those_of_the_weights_at_the_early_stop_step():
    test = dense_data(80, seed=7)
    _, ticket = _lottery({"validation_data": dense_data(64, seed=6), "test_data": test})
    for record in ticket.rounds:
        expected = {f"test_{k}": v for k, v in ticket.tested_at_best[record["round"]].items()}
        got = {k: v for k, v in record["early_stop_metrics"].items() if k.startswith("test_")}
        assert got == expected
    # The round's end, its early stop, and its supermask (m ⊙ θ₀ before the round trains).
    assert ticket.test_evaluations == 3 * len(ticket.rounds)


def test_testing_at_the_round_end_does_not_change_what_trains():
    validation = dense_data(64, seed=6)
    tested, _ = _lottery({"validation_data": validation, "test_data": dense_data(80, seed=7)})
    untested, _ = _lottery({"validation_data": validation})
    assert lth_keras.get_masks(tested).keys() == lth_keras.get_masks(untested).keys()
    for key, mask in lth_keras.get_masks(tested).items():
        np.testing.assert_array_equal(mask, lth_keras.get_masks(untested)[key])
    untested_weights = take_snapshot(untested)
    for key, value in take_snapshot(tested).items():
        np.testing.assert_array_equal(value, untested_weights[key])


def _resumable(test):
    model = compile_model(lth_keras.prune_for_lottery(dense_model()))
    ticket = lth_keras.LotteryTicketCallback(
        epochs_per_round=2,
        eval_every_steps=2,
        validation_data=dense_data(64, seed=6),
        test_data=test,
        verbose=0,
    )
    return model, ticket


def test_resuming_by_hand_restores_the_early_stop_weights(tmp_path):
    test = dense_data(80, seed=7)
    x, y = dense_data()
    keras.utils.set_random_seed(0)
    model, ticket = _resumable(test)
    model.fit(x, y, batch_size=32, epochs=3, callbacks=[ticket], verbose=0)  # 1.5 rounds
    state = ticket.state_dict()
    assert state["best_weights_digests"]  # round 1 has an early-stop candidate not yet tested
    items = ticket.checkpoint_items()
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer, **items).save(str(tmp_path / "ckpt"))
    model.fit(x, y, batch_size=32, epochs=4, initial_epoch=3, callbacks=[ticket], verbose=0)

    keras.utils.set_random_seed(0)
    resumed_model, resumed = _resumable(test)
    resumed.prepare(resumed_model)
    checkpoint = tf.train.Checkpoint(
        model=resumed_model, optimizer=resumed_model.optimizer, **resumed.checkpoint_items(state)
    )
    checkpoint.restore(path).assert_consumed()
    resumed.load_state(state, ticket.theta_0)
    resumed_model.fit(x, y, batch_size=32, epochs=4, initial_epoch=3, callbacks=[resumed], verbose=0)
    assert resumed.rounds[1]["early_stop_metrics"] == ticket.rounds[1]["early_stop_metrics"]


def test_a_state_whose_early_stop_weights_were_not_restored_is_refused(tmp_path):
    test = dense_data(80, seed=7)
    model, ticket = _resumable(test)
    model.fit(*dense_data(), batch_size=32, epochs=3, callbacks=[ticket], verbose=0)
    state = ticket.state_dict()
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "ckpt"))
    resumed_model, resumed = _resumable(test)
    resumed.prepare(resumed_model)
    tf.train.Checkpoint(model=resumed_model, optimizer=resumed_model.optimizer).restore(path)
    with pytest.raises(ValueError, match="checkpoint_items"):
        resumed.load_state(state, ticket.theta_0)
    untested = lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)  # no test_data: no copy
    untested.prepare(compile_model(lth_keras.prune_for_lottery(dense_model())))
    with pytest.raises(ValueError, match="test_data"):
        untested.checkpoint_items(state)


def test_a_model_reset_puts_back_the_model_and_optimizer_as_compiled():
    model = compile_model(lth_keras.random_state.checkpoint_random_state(_dropout_model()))
    reset = ModelReset(model)
    before = [v.numpy() for v in model.variables]
    generators = [v.numpy() for v in lth_keras.random_state.random_state_variables(model)]
    assert generators
    model.fit(*dense_data(), batch_size=32, epochs=2, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 16
    reset.reset()
    for variable, value in zip(model.variables, before):
        np.testing.assert_array_equal(variable.numpy(), value)
    for variable, value in zip(lth_keras.random_state.random_state_variables(model), generators):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert int(model.optimizer.iterations.numpy()) == 0
    for variable in optimizer_variables(model.optimizer):
        assert not np.any(variable.numpy()), variable.name  # Adam's moments back at 0


def _dropout_model():
    inputs = keras.Input((20,))
    h = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    h = keras.layers.Dropout(0.5, seed=1, name="drop")(h)
    return lth_keras.prune_for_lottery(keras.Model(inputs, keras.layers.Dense(4, name="out")(h)))
