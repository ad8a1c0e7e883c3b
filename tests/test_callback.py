"""LotteryTicketCallback through model.fit: the science of each round, exactly."""

import numpy as np
import pytest

import lth_keras
from lth_keras import pipelines
from lth_keras.model_state import masked_variables
from tests.conftest import (
    StateProbe,
    compile_model,
    conv_data,
    conv_model,
    dense_data,
    dense_model,
    expected_remaining,
)

keras = lth_keras.keras
STEPS_PER_EPOCH = 8  # 256 examples, batch 32

FAST_SETTINGS = [
    pytest.param({}, id="plain"),
    pytest.param({"steps_per_execution": 4}, id="steps_per_execution"),
    pytest.param({"jit_compile": True}, id="jit"),
    pytest.param({"jit_compile": True, "steps_per_execution": 4}, id="jit+steps_per_execution"),
    pytest.param({"jit_compile": True, "steps_per_execution": 4, "fused": True}, id="jit+fused_steps"),
]


def _train(rounds=3, rate=0.2, compile_kwargs=None, callback_kwargs=None, optimizer=None, model=None):
    """Trains 8 steps per epoch; compile_kwargs["fused"] runs them through lth_keras.fuse_steps."""
    compile_kwargs = dict(compile_kwargs or {})
    fused = compile_kwargs.pop("fused", False)
    model = model or lth_keras.prune_for_lottery(dense_model(), pruning_rate=rate)
    compile_model(model, optimizer=optimizer, **compile_kwargs)
    kwargs = {"epochs_per_round": 1, "verbose": 0, **(callback_kwargs or {})}
    ticket = lth_keras.LotteryTicketCallback(**kwargs)
    probe = StateProbe()
    x, y = dense_data()
    fit = dict(epochs=rounds * kwargs["epochs_per_round"], callbacks=[ticket, probe], verbose=0)
    if fused:
        lth_keras.fuse_steps(model)
        blocks = compile_kwargs["steps_per_execution"]
        stream = pipelines.training_stream(x, y, 32, steps_per_element=blocks)
        model.fit(stream, steps_per_epoch=STEPS_PER_EPOCH, **fit)
    else:
        model.fit(x, y, batch_size=32, **fit)
    return model, ticket, probe


@pytest.mark.parametrize("settings", FAST_SETTINGS)
def test_per_layer_counts_are_exact_after_each_round(settings):
    model, ticket, probe = _train(rounds=4, rate=0.2, compile_kwargs=settings)
    rates = {"fc1/kernel": 0.2, "fc2/kernel": 0.2, "out/kernel": 0.1}
    sizes = {key: w.shape.num_elements() for key, (w, _) in masked_variables(model).items()}
    assert [r["round"] for r in ticket.rounds] == [0, 1, 2, 3]
    for round_index, (masks, _, _, _) in enumerate(probe.epoch_begin):
        for key, mask in masks.items():
            assert int(mask.sum()) == expected_remaining(sizes[key], rates[key], round_index), key
        record = ticket.rounds[round_index]
        total = sum(expected_remaining(sizes[k], rates[k], round_index) for k in sizes)
        assert record["weights_remaining"] == pytest.approx(total / sum(sizes.values()))
        for key in sizes:
            layer = key.split("/")[0]
            pruned = 1 - expected_remaining(sizes[key], rates[key], round_index) / sizes[key]
            assert record["layer_sparsity"][layer] == pytest.approx(pruned)


@pytest.mark.parametrize("settings", FAST_SETTINGS)
def test_rewind_to_theta_0_is_bit_exact_and_optimizer_is_reset(settings):
    model, ticket, probe = _train(rounds=3, compile_kwargs=settings)
    for masks, weights, slots, iterations in probe.epoch_begin[1:]:
        assert iterations == 0
        assert all(np.all(s == 0) for s in slots)
        for name, value in weights.items():
            expected = probe.theta_0[name] * masks[name] if name in masks else probe.theta_0[name]
            np.testing.assert_array_equal(value, expected, err_msg=name)
    for name, value in ticket.theta_0.items():  # the callback's own θ₀ is the true one
        np.testing.assert_array_equal(value, probe.theta_0[name])


@pytest.mark.parametrize("settings", FAST_SETTINGS)
def test_rewind_to_theta_k_is_bit_exact_and_iterations_replay(settings):
    model, ticket, probe = _train(rounds=3, compile_kwargs=settings, callback_kwargs={"rewind_step": 4})
    theta_k = probe.weights_at_step[4]
    for name, value in ticket.theta_k.items():
        np.testing.assert_array_equal(value, theta_k[name], err_msg=name)
    assert any(not np.array_equal(theta_k[n], probe.theta_0[n]) for n in theta_k)
    for masks, weights, slots, iterations in probe.epoch_begin[1:]:
        assert iterations == 4
        assert all(np.all(s == 0) for s in slots)
        for name, value in weights.items():
            expected = theta_k[name] * masks[name] if name in masks else theta_k[name]
            np.testing.assert_array_equal(value, expected, err_msg=name)


def test_keep_theta_0_false_drops_theta_0_once_theta_k_is_captured():
    _, kept, kept_probe = _train(rounds=3, callback_kwargs={"rewind_step": 4})
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    _, lean, probe = _train(rounds=3, callback_kwargs={"rewind_step": 4, "keep_theta_0": False})
    assert kept.theta_0 is not None and lean.theta_0 is None
    for name, value in lean.theta_k.items():  # the rounds still rewind to the same θ_k
        np.testing.assert_array_equal(value, kept.theta_k[name], err_msg=name)
    for (_, weights, _, _), (_, kept_weights, _, _) in zip(probe.epoch_begin, kept_probe.epoch_begin):
        for name, value in weights.items():
            np.testing.assert_array_equal(value, kept_weights[name], err_msg=name)
    # Without late rewinding θ₀ is the rewind target and is never dropped.
    _, ticket, _ = _train(rounds=2, callback_kwargs={"keep_theta_0": False})
    assert ticket.theta_0 is not None


@pytest.mark.parametrize("settings", FAST_SETTINGS)
def test_pruned_weights_stay_zero_and_masks_stay_fixed_within_a_round(settings):
    model, ticket, probe = _train(rounds=3, rate=0.5, compile_kwargs=settings)
    steps_per_call = settings.get("steps_per_execution", 1)
    calls_per_round = STEPS_PER_EPOCH // steps_per_call
    assert len(probe.batch_checks) == 3 * calls_per_round
    for index, (masks, stored) in enumerate(probe.batch_checks):
        round_masks = probe.epoch_begin[index // calls_per_round][0]
        for key, mask in masks.items():
            np.testing.assert_array_equal(mask, round_masks[key])
            # The optimizer applies the wrappers' mask constraint: after every step the weight
            # variables themselves, which the forward pass reads, are 0 where the round prunes.
            assert np.all(stored[key][round_masks[key] == 0] == 0.0)
    # After fit the stored kernels themselves are exactly zero where pruned.
    for key, (weight, mask) in masked_variables(model).items():
        assert np.all(weight.numpy()[mask.numpy() == 0] == 0.0)
    # The forward pass really uses the masked weights: it matches the stripped model.
    x, _ = dense_data()
    np.testing.assert_allclose(
        lth_keras.strip(model).predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_pruning_uses_magnitudes_of_the_trained_weights():
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    x, y = dense_data()
    first = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    model.fit(x, y, epochs=1, callbacks=[first], verbose=0)
    trained = lth_keras.get_effective_weights(model)
    model.fit(x, y, epochs=1, callbacks=[first], verbose=0)  # prunes before training round 1
    for key, mask in lth_keras.get_masks(model).items():
        kept = np.abs(trained[key])[mask == 1]
        pruned = np.abs(trained[key])[mask == 0]
        assert kept.min() >= pruned.max(), key


def test_global_scope_pools_layers_of_the_same_rate():
    model = lth_keras.prune_for_lottery(
        conv_model(), pruning_rate=0.5, output_pruning_rate=0.0, scope="global"
    )
    compile_model(model)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    probe = StateProbe()
    x, y = conv_data()
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[ticket, probe], verbose=0)
    masks = probe.epoch_begin[1][0]
    pooled = ["conv1/kernel", "conv2/kernel", "fc/kernel"]
    total = sum(masks[k].size for k in pooled)
    assert sum(int(masks[k].sum()) for k in pooled) == expected_remaining(total, 0.5, 1)
    per_layer = [masks[k].mean() for k in pooled]
    assert max(per_layer) - min(per_layer) > 0.01  # layers lose different fractions
    assert masks["out/kernel"].sum() == masks["out/kernel"].size


def test_global_threshold_is_shared():
    model = lth_keras.prune_for_lottery(
        conv_model(), pruning_rate=0.5, output_pruning_rate=0.0, scope="global"
    )
    compile_model(model)
    x, y = conv_data()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[ticket], verbose=0)
    trained = lth_keras.get_effective_weights(model)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[ticket], verbose=0)
    masks = lth_keras.get_masks(model)
    pooled = ["conv1/kernel", "conv2/kernel", "fc/kernel"]
    kept = np.concatenate([np.abs(trained[k])[masks[k] == 1] for k in pooled])
    pruned = np.concatenate([np.abs(trained[k])[masks[k] == 0] for k in pooled])
    assert kept.min() >= pruned.max()


def test_fit_ending_at_a_round_boundary_keeps_trained_weights_then_prunes_on_next_fit():
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.2))
    x, y = dense_data()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=2, verbose=0)
    model.fit(x, y, epochs=2, callbacks=[ticket], verbose=0)
    assert lth_keras.get_masks(model).weights_remaining == 1.0
    assert len(ticket.rounds) == 1
    model.fit(x, y, epochs=2, callbacks=[ticket], verbose=0)
    assert len(ticket.rounds) == 2
    assert ticket.rounds[1]["weights_remaining"] < 1.0


def test_one_shot_prunes_once_to_the_rate_and_stops():
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.8, output_pruning_rate=0.8)
    compile_model(model)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, one_shot=True, verbose=0)
    x, y = dense_data()
    history = model.fit(x, y, epochs=5, callbacks=[ticket], verbose=0)
    assert len(history.history["loss"]) == 2
    assert [r["round"] for r in ticket.rounds] == [0, 1]
    sizes = {k: w.shape.num_elements() for k, (w, _) in masked_variables(model).items()}
    for key, mask in lth_keras.get_masks(model).items():
        assert int(mask.sum()) == expected_remaining(sizes[key], 0.8, 1)
    with pytest.raises(ValueError, match="one-shot"):
        model.fit(x, y, epochs=1, callbacks=[ticket], verbose=0)


def test_steps_per_round_cuts_rounds_inside_epochs():
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.2))
    ticket = lth_keras.LotteryTicketCallback(steps_per_round=4, verbose=0)
    x, y = dense_data()
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[ticket], verbose=0)  # 16 steps
    assert [r["round"] for r in ticket.rounds] == [0, 1, 2, 3]
    assert all(r["steps"] == 4 for r in ticket.rounds)
    sizes = {k: w.shape.num_elements() for k, (w, _) in masked_variables(model).items()}
    assert int(lth_keras.get_masks(model)["fc1/kernel"].sum()) == expected_remaining(
        sizes["fc1/kernel"], 0.2, 3
    )


def test_early_stop_step_is_the_step_of_minimum_validation_loss():
    x, y = dense_data()
    xv, yv = dense_data(64, seed=1)
    model = compile_model(lth_keras.prune_for_lottery(dense_model()))
    seen = []

    class Recorder(lth_keras.LotteryTicketCallback):
        def _evaluate(self, data=None, prefix="val_"):
            result = super()._evaluate(data, prefix)
            if prefix == "val_":
                seen.append((self.state.round, self.state.round_steps, result["val_loss"]))
            return result

    ticket = Recorder(
        epochs_per_round=2, eval_every_steps=4, validation_data=(xv, yv), test_data=(xv, yv), verbose=0
    )
    model.fit(x, y, batch_size=32, epochs=4, callbacks=[ticket], verbose=0)
    for record in ticket.rounds:
        evaluations = [(step, loss) for r, step, loss in seen if r == record["round"] and step % 4 == 0]
        assert [s for s, _ in evaluations][:4] == [4, 8, 12, 16]
        best_step, best_loss = min(evaluations, key=lambda e: e[1])
        assert record["early_stop_step"] == best_step
        assert record["early_stop_metrics"]["val_loss"] == pytest.approx(best_loss)
        assert "test_accuracy" in record["early_stop_metrics"]
        assert "test_accuracy" in record["metrics"] and "val_loss" in record["metrics"]


def test_epoch_validation_gives_early_stop_and_training_metrics_survive_evaluation():
    x, y = dense_data()
    xv, yv = dense_data(64, seed=1)
    model = compile_model(lth_keras.prune_for_lottery(dense_model()))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=3, verbose=0)
    history = model.fit(x, y, epochs=3, validation_data=(xv, yv), callbacks=[ticket], verbose=0)
    val_losses = history.history["val_loss"]
    best_epoch = int(np.argmin(val_losses))
    assert ticket.rounds[0]["early_stop_step"] == (best_epoch + 1) * STEPS_PER_EPOCH
    assert ticket.rounds[0]["metrics"]["loss"] == pytest.approx(history.history["loss"][-1])


def test_callback_hooks_driven_by_hand():
    """A custom training loop can drive the callback without model.fit."""
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    x, y = dense_data()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    ticket.set_model(model)
    ticket.set_params({"epochs": 3, "steps": 8, "verbose": 0})
    ticket.on_train_begin()
    for epoch in range(3):
        ticket.on_epoch_begin(epoch)
        for batch in range(8):
            model.train_on_batch(x[batch * 32 : (batch + 1) * 32], y[batch * 32 : (batch + 1) * 32])
        ticket.on_epoch_end(epoch, {"loss": 1.0})
    ticket.on_train_end()
    assert [r["steps"] for r in ticket.rounds] == [8, 8, 8]
    assert ticket.rounds[2]["weights_remaining"] < ticket.rounds[1]["weights_remaining"] < 1.0


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"epochs_per_round": 0}, ValueError, "epochs_per_round"),
        ({"epochs_per_round": 1.5}, TypeError, "epochs_per_round"),
        ({}, ValueError, "exactly one"),
        ({"epochs_per_round": 1, "steps_per_round": 5}, ValueError, "exactly one"),
        ({"steps_per_round": 10, "rewind_step": 10}, ValueError, "rewind_step"),
        ({"epochs_per_round": 1, "rewind_step": -1}, ValueError, "rewind_step"),
        ({"epochs_per_round": 1, "eval_every_steps": 100}, ValueError, "validation_data"),
        ({"epochs_per_round": 1, "one_shot": "yes"}, TypeError, "one_shot"),
    ],
)
def test_bad_callback_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        lth_keras.LotteryTicketCallback(**kwargs)


def test_unprepared_model_is_refused():
    model = compile_model(dense_model())
    x, y = dense_data()
    with pytest.raises(ValueError, match="prune_for_lottery"):
        model.fit(x, y, epochs=1, callbacks=[lth_keras.LotteryTicketCallback(epochs_per_round=1)], verbose=0)


def test_rewind_step_beyond_the_first_round_is_refused():
    model = compile_model(lth_keras.prune_for_lottery(dense_model()))
    x, y = dense_data()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, rewind_step=8, verbose=0)
    with pytest.raises(ValueError, match="rewind_step"):
        model.fit(x, y, batch_size=32, epochs=2, callbacks=[ticket], verbose=0)


def test_steps_that_do_not_fit_steps_per_execution_are_refused():
    model = compile_model(lth_keras.prune_for_lottery(dense_model()), steps_per_execution=4)
    x, y = dense_data()
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, rewind_step=2, verbose=0)
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.fit(x, y, batch_size=32, epochs=2, callbacks=[ticket], verbose=0)


def test_an_optimizer_that_already_trained_is_refused():
    model = compile_model(lth_keras.prune_for_lottery(dense_model()))
    x, y = dense_data()
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="already taken"):
        model.fit(x, y, epochs=1, callbacks=[lth_keras.LotteryTicketCallback(epochs_per_round=1)], verbose=0)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.1, momentum=0.9),
        lambda: keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.3),
        lambda: keras.optimizers.legacy.Adam(1e-2),
    ],
    ids=["sgd_momentum", "adagrad", "legacy_adam"],
)
def test_optimizer_slots_return_to_their_initial_values(optimizer):
    model, ticket, probe = _train(rounds=2, optimizer=optimizer())
    first, second = probe.epoch_begin[0][2], probe.epoch_begin[1][2]
    assert len(first) == len(second) > 0
    for before, after in zip(first, second):
        np.testing.assert_array_equal(before, after)
    assert probe.epoch_begin[1][3] == 0


def test_learning_rate_schedule_replays_from_the_rewind_step():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([6], [0.1, 0.001])
    optimizer = keras.optimizers.SGD(schedule)
    model = compile_model(lth_keras.prune_for_lottery(dense_model()), optimizer=optimizer)
    used = []  # (step, learning rate the optimizer applied at that step)
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, l: used.append(
            (int(optimizer.iterations), float(optimizer.learning_rate))
        )
    )
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, rewind_step=4, verbose=0)
    model.fit(*dense_data(), batch_size=32, epochs=2, callbacks=[ticket, record], verbose=0)
    round_0, round_1 = used[:8], used[8:]
    assert [s for s, _ in round_0] == list(range(1, 9))
    assert [s for s, _ in round_1] == list(range(5, 13))
    assert [lr for _, lr in round_1] == [lr for s, lr in round_0 if s >= 5] + [pytest.approx(0.001)] * 4
    assert round_1[0][1] == pytest.approx(0.1)


def test_ticket_save_and_load_round_trip(tmp_path):
    model, ticket, _ = _train(rounds=3, callback_kwargs={"rewind_step": 4})
    ticket.save(str(tmp_path))
    loaded = lth_keras.load_ticket(str(tmp_path))
    for key, mask in ticket.masks.items():
        np.testing.assert_array_equal(loaded.masks[key], mask)
    for name in ticket.theta_0:
        np.testing.assert_array_equal(loaded.theta_0[name], ticket.theta_0[name])
        np.testing.assert_array_equal(loaded.theta_k[name], ticket.theta_k[name])
    assert [r["round"] for r in loaded.rounds] == [0, 1, 2]

    # Retrain the ticket on a freshly built model of the same architecture.
    fresh = lth_keras.prune_for_lottery(dense_model(seed=99))
    lth_keras.apply_ticket(fresh, loaded, weights="theta_k")
    for name, value in lth_keras.take_snapshot(fresh).items():
        expected = loaded.theta_k[name] * loaded.masks[name] if name in loaded.masks else loaded.theta_k[name]
        np.testing.assert_array_equal(value, expected)


def test_a_ticket_for_another_architecture_is_refused_naming_the_layer(tmp_path):
    _, ticket, _ = _train(rounds=2)
    ticket.save(str(tmp_path))
    loaded = lth_keras.load_ticket(str(tmp_path))
    other = lth_keras.prune_for_lottery(conv_model())
    with pytest.raises(ValueError, match="conv1/kernel"):
        lth_keras.apply_ticket(other, loaded)
    narrower = keras.Model(*_narrow_dense())
    with pytest.raises(ValueError, match="fc1/kernel"):
        lth_keras.set_masks(lth_keras.prune_for_lottery(narrower), loaded.masks)


def _narrow_dense():
    inputs = keras.Input((20,))
    h = keras.layers.Dense(8, name="fc1")(inputs)
    h = keras.layers.Dense(12, name="fc2")(h)
    return inputs, keras.layers.Dense(4, name="out")(h)


def _auto_named_model():
    """A model whose Dense layers Keras names itself (dense, dense_1, ... by creation order)."""
    inputs = keras.Input((20,))
    h = keras.layers.Dense(8)(inputs)
    return keras.Model(inputs, keras.layers.Dense(4)(h))


def test_a_ticket_of_automatically_named_layers_says_both_names_and_to_name_layers(tmp_path):
    model = lth_keras.prune_for_lottery(_auto_named_model())
    keras.layers.Dense(3)  # one more layer created: the next model's automatic names shift
    other = lth_keras.prune_for_lottery(_auto_named_model())
    ticket = lth_keras.Ticket(lth_keras.get_masks(model), lth_keras.take_snapshot(model))
    with pytest.raises(ValueError) as raised:
        lth_keras.apply_ticket(other, ticket)
    message = str(raised.value)
    for key in list(ticket.masks) + list(lth_keras.get_masks(other)):
        assert key in message  # the ticket's names and the model's
    assert "name=" in message
