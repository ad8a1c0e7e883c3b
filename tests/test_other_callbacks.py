"""LotteryTicketCallback beside the rest of model.fit: never a silently wrong ticket.

Each test reads the model's own variables (weights, masks, optimizer state) to check the
outcome, rather than trusting the callback's records.
"""

import re
import warnings

import numpy as np
import pytest

import lth_keras
from lth_keras import LotteryWarning
from lth_keras.model_state import masked_variables, optimizer_variables
from tests.conftest import StateProbe, compile_model, dense_data, dense_model

keras = lth_keras.keras
STEPS_PER_EPOCH = 8  # 256 examples, batch 32


def _lottery_model(seed=0, **prune_kwargs):
    return compile_model(lth_keras.prune_for_lottery(dense_model(seed), **prune_kwargs))


def _fit(model, callbacks, epochs, **kwargs):
    x, y = dense_data()
    return model.fit(x, y, batch_size=32, epochs=epochs, callbacks=callbacks, verbose=0, **kwargs)


def _all_variables(model):
    return [v.numpy() for v in model.weights]


def _mask_values(model):
    return {key: mask.numpy() for key, (_, mask) in masked_variables(model).items()}


def _slots(optimizer):
    return [v.numpy() for v in optimizer_variables(optimizer) if v is not optimizer.iterations]


class RestoreWeights(keras.callbacks.Callback):
    """What EarlyStopping(restore_best_weights=True) does: set_weights from an earlier epoch."""

    def __init__(self, save_after_epoch, restore_after_epoch):
        super().__init__()
        self.save_after_epoch, self.restore_after_epoch = save_after_epoch, restore_after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.save_after_epoch:
            self.saved = self.model.get_weights()
        if epoch == self.restore_after_epoch:
            self.model.set_weights(self.saved)


# --- 1 and 2: EarlyStopping, and anything that assigns the masks ---------------------


@pytest.mark.parametrize("restore_best_weights", [False, True])
@pytest.mark.parametrize("lottery_first", [True, False])
def test_early_stopping_is_refused_before_anything_trains(restore_best_weights, lottery_first):
    model = _lottery_model()
    before = _all_variables(model)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=1, restore_best_weights=restore_best_weights
    )
    callbacks = [ticket, stopper] if lottery_first else [stopper, ticket]
    match = r"EarlyStopping\(monitor='val_loss'\) cannot run beside LotteryTicketCallback.*eval_every_steps"
    with pytest.raises(ValueError, match=match):
        _fit(model, callbacks, epochs=5, validation_data=dense_data(64, seed=1))
    assert int(model.optimizer.iterations.numpy()) == 0
    for value, initial in zip(_all_variables(model), before):
        np.testing.assert_array_equal(value, initial)
    assert ticket.rounds == []


@pytest.mark.parametrize("lottery_first", [True, False])
def test_masks_restored_by_set_weights_mid_round_are_refused_before_a_record(lottery_first):
    model = _lottery_model(pruning_rate=0.5)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)
    restorer = RestoreWeights(save_after_epoch=0, restore_after_epoch=2)  # round 0's weights, mid-round 1
    callbacks = [ticket, restorer] if lottery_first else [restorer, ticket]
    with pytest.raises(lth_keras.InvariantError, match=r"mask of 'fc1/kernel' changed .* came back.*round 1"):
        _fit(model, callbacks, epochs=6)
    assert all(np.all(mask == 1) for mask in _mask_values(model).values())  # they really came back
    assert [r["round"] for r in ticket.rounds] == [0]  # and no round was recorded with them


def test_masks_restored_after_the_last_epoch_are_refused_when_fit_ends():
    model = _lottery_model(pruning_rate=0.5)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)
    restorer = RestoreWeights(save_after_epoch=0, restore_after_epoch=3)
    with pytest.raises(lth_keras.InvariantError, match="when fit ended"):
        _fit(model, [ticket, restorer], epochs=4)
    with pytest.raises(lth_keras.InvariantError, match="before fit started"):  # not pruned from them either
        _fit(model, [ticket], epochs=2)
    assert [r["round"] for r in ticket.rounds] == [0, 1]
    assert [r["weights_remaining"] < 1 for r in ticket.rounds] == [False, True]


# --- 3: compiling again between fits ------------------------------------------------


def test_compiling_again_between_rounds_resets_the_new_optimizer():
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    _fit(model, [ticket], epochs=1)  # round 0
    first_optimizer = model.optimizer
    compile_model(model, optimizer=keras.optimizers.Adam(3e-3))  # e.g. to lower the learning rate
    probe = StateProbe()
    with pytest.warns(LotteryWarning, match="round 1 starts at learning rate 0.003"):
        _fit(model, [ticket, probe], epochs=3)  # rounds 1-3
    assert model.optimizer is not first_optimizer
    for masks, weights, slots, iterations in probe.epoch_begin:
        assert iterations == 0
        assert all(np.all(slot == 0) for slot in slots)
    assert len(probe.epoch_begin[-1][2]) > 0  # the new optimizer's slots exist by round 3
    assert [r["steps"] for r in ticket.rounds] == [STEPS_PER_EPOCH] * 4
    assert int(first_optimizer.iterations.numpy()) == STEPS_PER_EPOCH  # left as round 0 left it


def test_compiling_again_mid_round_continues_the_round_and_says_so():
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=2, rewind_step=4, verbose=0)
    with pytest.warns(LotteryWarning, match="inside round 0"):
        _fit(model, [ticket], epochs=1)  # half of round 0
    compile_model(model, optimizer=keras.optimizers.Adam(1e-2))
    probe = StateProbe()
    with pytest.warns(LotteryWarning, match="compiled again 8 steps into round 0: .* at iteration 8"):
        _fit(model, [ticket, probe], epochs=3)
    iterations = [entry[3] for entry in probe.epoch_begin]
    assert iterations == [8, 4, 12]  # the rest of round 0, then round 1 from θ_k's step 4
    assert [r["steps"] for r in ticket.rounds] == [16, 16]
    theta_k = ticket.theta_k
    for name, value in probe.epoch_begin[1][1].items():
        masks = probe.epoch_begin[1][0]
        np.testing.assert_array_equal(value, theta_k[name] * masks[name] if name in masks else theta_k[name])


def test_an_optimizer_that_already_trained_is_refused_after_a_recompile():
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    _fit(model, [ticket], epochs=1)
    used = keras.optimizers.SGD(0.1)
    used.iterations.assign(5)
    compile_model(model, optimizer=used)
    with pytest.raises(ValueError, match="compiled again with an optimizer that has already taken 5 steps"):
        _fit(model, [ticket], epochs=1)


# --- 4: one callback, one model -----------------------------------------------------


def test_a_callback_refuses_a_second_model_and_leaves_both_alone():
    first, second = _lottery_model(seed=0), _lottery_model(seed=7)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    _fit(first, [ticket], epochs=1)
    first_state = _all_variables(first) + _slots(first.optimizer)
    second_state = _all_variables(second)
    match = (
        r"runs the lottery of model 'tiny_dense' .*\(another model of that name\).* new LotteryTicketCallback"
    )
    with pytest.raises(ValueError, match=match):
        _fit(second, [ticket], epochs=2)
    for value, before in zip(_all_variables(second), second_state):
        np.testing.assert_array_equal(value, before)
    assert int(second.optimizer.iterations.numpy()) == 0
    for value, before in zip(_all_variables(first) + _slots(first.optimizer), first_state):
        np.testing.assert_array_equal(value, before)
    _fit(first, [ticket], epochs=1)  # still serves its own model
    assert [r["round"] for r in ticket.rounds] == [0, 1]
    assert lth_keras.get_masks(first).weights_remaining < 1


def test_two_lottery_callbacks_in_one_fit_are_refused():
    model = _lottery_model()
    callbacks = [lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0) for _ in range(2)]
    with pytest.raises(ValueError, match="two LotteryTicketCallbacks"):
        _fit(model, callbacks, epochs=2)
    assert int(model.optimizer.iterations.numpy()) == 0


# --- what is said rather than refused ---------------------------------------------


@pytest.mark.parametrize(
    "make_callback",
    [
        lambda: keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=0, min_delta=10),
        lambda: keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.5),
    ],
    ids=["ReduceLROnPlateau", "LearningRateScheduler"],
)
def test_callbacks_that_set_the_learning_rate_are_warned_about(make_callback):
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    rates = []
    probe = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, l: rates.append(float(model.optimizer.learning_rate))
    )
    with pytest.warns(LotteryWarning) as caught:
        _fit(model, [ticket, make_callback(), probe], epochs=3)
    messages = [str(w.message) for w in caught]
    name = type(make_callback()).__name__
    assert any(m.startswith(f"{name} sets the optimizer's learning rate") for m in messages)
    assert any(re.match(r"round \d starts at learning rate", m) for m in messages)
    assert rates[2] < rates[0]  # what is warned about: the rate carries over into later rounds


def test_a_learning_rate_schedule_and_a_plain_run_say_nothing():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([4], [0.1, 0.01])
    model = compile_model(
        lth_keras.prune_for_lottery(dense_model()), optimizer=keras.optimizers.SGD(schedule)
    )
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LotteryWarning)
        _fit(model, [ticket, keras.callbacks.CSVLogger("/dev/null")], epochs=3)
    assert len(ticket.rounds) == 3


def _conv_variety():
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    h = keras.layers.DepthwiseConv2D(3, name="dw")(h)
    h = keras.layers.SeparableConv2D(4, 1, name="sep")(h)
    h = keras.layers.Reshape((16, 4))(h)
    h = keras.layers.Conv1DTranspose(2, 3, name="tconv")(h)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Flatten()(h))
    return keras.Model(inputs, outputs)


def test_weights_left_dense_are_named_unless_excluded():
    with pytest.warns(LotteryWarning) as caught:
        lth_keras.prune_for_lottery(_conv_variety())
    message = str(caught[0].message)
    assert "dw (DepthwiseConv2D: depthwise_kernel; tfmot has no prunable weights for it)" in message
    assert "sep (SeparableConv2D: depthwise_kernel; only its other weights are pruned)" in message
    assert "tconv (Conv1DTranspose: kernel; tfmot has no prunable weights for it)" in message
    assert "conv (Conv2D" not in message and "out (" not in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", LotteryWarning)
        lth_keras.prune_for_lottery(_conv_variety(), exclude=["dw", "sep", "tconv"])


@pytest.mark.parametrize("epochs", [1, 2])
def test_fit_shorter_than_a_round_says_the_round_is_unfinished(epochs):
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=3, verbose=0)
    with pytest.warns(
        LotteryWarning, match=f"inside round 0, after {epochs} of its 3 epochs, which has no record"
    ):
        _fit(model, [ticket], epochs=epochs)
    assert ticket.rounds == []
    with warnings.catch_warnings():  # the next fit finishes the round: nothing to say
        warnings.simplefilter("error", LotteryWarning)
        _fit(model, [ticket], epochs=3 - epochs)
    assert [r["steps"] for r in ticket.rounds] == [3 * STEPS_PER_EPOCH]


def test_another_callback_stopping_fit_is_said():
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)

    def stop(epoch, logs):
        model.stop_training = epoch == 2

    with pytest.warns(LotteryWarning, match="inside round 1, after 1 of its 2 epochs.*stop_training was set"):
        _fit(model, [ticket, keras.callbacks.LambdaCallback(on_epoch_end=stop)], epochs=10)
    assert len(ticket.rounds) == 1


def test_a_rate_that_empties_a_layer_is_said_when_wrapping_and_when_pruning():
    with pytest.warns(LotteryWarning, match=r"at rate 0.999, the first round prunes all 48 .* 'out/kernel'"):
        model = _lottery_model(layer_pruning_rates={"out": 0.999})
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    with pytest.warns(
        LotteryWarning, match="pruning before round 1 prunes all 48 remaining weights of 'out/kernel'"
    ):
        _fit(model, [ticket], epochs=2)
    assert not np.any(_mask_values(model)["out/kernel"])


@pytest.mark.parametrize("saved_in_round", [0, 1])
def test_a_fresh_callback_on_a_model_saved_mid_run_says_so(tmp_path, saved_in_round):
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)
    with pytest.warns(LotteryWarning, match="inside round"):
        _fit(model, [ticket], epochs=2 * saved_in_round + 1)
    path = str(tmp_path / "mid_run.keras")
    model.save(path)
    loaded = compile_model(lth_keras.load_model(path))
    with pytest.warns(LotteryWarning, match=f"was in round {saved_in_round} of a lottery run"):
        _fit(loaded, [lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)], epochs=2)
    fresh = _lottery_model()
    with warnings.catch_warnings():  # a model that never trained in a lottery: nothing to say
        warnings.simplefilter("error", LotteryWarning)
        _fit(fresh, [lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)], epochs=2)


def test_steps_per_round_uses_keras_per_epoch_validation_for_the_early_stop_step():
    model = _lottery_model()
    ticket = lth_keras.LotteryTicketCallback(steps_per_round=16, verbose=0)
    history = _fit(model, [ticket], epochs=4, validation_data=dense_data(64, seed=1))
    val_loss = history.history["val_loss"]
    for index, record in enumerate(ticket.rounds):  # two epochs, two evaluations, a round
        losses = val_loss[2 * index : 2 * index + 2]
        assert record["early_stop_step"] == STEPS_PER_EPOCH * (1 + int(np.argmin(losses)))
        assert record["early_stop_metrics"]["val_loss"] == pytest.approx(min(losses))
        assert record["metrics"]["val_loss"] == pytest.approx(losses[-1])


def _embedding_model():
    inputs = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(50, 8, name="embed")(inputs)
    outputs = keras.layers.Dense(4, name="out")(keras.layers.Flatten()(h))
    return keras.Model(inputs, outputs)


def test_pruned_embedding_weights_are_stored_as_zeros_at_every_epoch_end():
    model = compile_model(lth_keras.prune_for_lottery(_embedding_model(), pruning_rate=0.5))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)
    stored = []  # what an epoch-end checkpoint placed after the lottery callback would save
    probe = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, l: stored.append(
            {k: (w.numpy(), m.numpy()) for k, (w, m) in masked_variables(model).items()}
        )
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, size=(256, 6)).astype(np.int32)
    y = (x[:, 0] % 4).astype(np.int64)
    model.fit(x, y, batch_size=32, epochs=4, callbacks=[ticket, probe], verbose=0)
    for weights in stored[2:]:  # epoch 2 ends mid-round 1, epoch 3 ends it
        weight, mask = weights["embed/embeddings"]
        assert mask.min() == 0
        assert np.count_nonzero(weight[mask == 0]) == 0


def test_a_hand_driven_loop_gets_the_same_checks():
    model, other = _lottery_model(seed=0), _lottery_model(seed=7)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    ticket.set_model(model)
    ticket.set_params({"epochs": 3, "steps": 8, "verbose": 0})
    ticket.on_train_begin()
    x, y = dense_data()
    initial = model.get_weights()
    for epoch in range(2):
        ticket.on_epoch_begin(epoch)
        for batch in range(8):
            model.train_on_batch(x[batch * 32 : (batch + 1) * 32], y[batch * 32 : (batch + 1) * 32])
        if epoch == 1:
            model.set_weights(initial)  # round 1's masks replaced by round 0's
            with pytest.raises(lth_keras.InvariantError, match="at an epoch's end \\(round 1\\)"):
                ticket.on_epoch_end(epoch, {"loss": 1.0})
        else:
            ticket.on_epoch_end(epoch, {"loss": 1.0})
    with pytest.raises(ValueError, match="cannot also serve model"):
        ticket.set_model(other)
    assert ticket.model is model
