"""The lottery callback on Keras 3 models, on whichever backend runs: the same round engine and
records as on tf_keras (exact counts, bit-exact rewinds, optimizer reset, pruned weights 0),
through lth_keras.prune_for_lottery and lth_keras.LotteryTicketCallback themselves."""

import keras
import numpy as np
import pytest
from keras import ops
from keras3_models import BACKEND, CountingLoss, dense_data, dense_model, lottery_run

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.masks import count_to_prune

STEPS = 4  # per epoch: 64 examples, batch 16


def _remaining(size, rate, rounds):
    for _ in range(rounds):
        size -= count_to_prune(size, rate)
    return size


class Probe(keras.callbacks.Callback):
    """After the lottery callback's epoch start: masks, weights and optimizer state as they are."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.seen.append(
            {
                "masks": lth3.get_masks(self.model),
                "weights": lth3.take_snapshot(self.model),
                "iterations": int(ops.convert_to_numpy(optimizer.iterations)),
                "slots": [  # Adam's moments (not its step counter or learning rate)
                    ops.convert_to_numpy(v)
                    for v in optimizer.variables
                    if "momentum" in v.name or "velocit" in v.name
                ],
            }
        )


def _run(rounds=3, loss=None, extra_callbacks=(), **callback_kwargs):
    probe = Probe()
    model, ticket = lottery_run(rounds, loss, [probe, *extra_callbacks], **callback_kwargs)
    return model, ticket, probe


def test_rounds_prune_exact_counts_rewind_bit_for_bit_and_reset_the_optimizer():
    model, ticket, probe = _run(rounds=3)
    assert [r["round"] for r in ticket.rounds] == [0, 1, 2]
    rates = {"fc1/kernel": 0.5, "fc2/kernel": 0.5, "out/kernel": 0.25}
    for round_index, seen in enumerate(probe.seen):
        for key, mask in seen["masks"].items():
            assert int(mask.sum()) == _remaining(mask.size, rates[key], round_index), (round_index, key)
        for key, value in seen["weights"].items():  # every weight back at θ₀, pruned ones 0
            expected = (
                ticket.theta_0[key] * seen["masks"][key] if key in seen["masks"] else ticket.theta_0[key]
            )
            np.testing.assert_array_equal(value, expected, err_msg=f"round {round_index}: {key}")
        if round_index:
            assert seen["iterations"] == 0
            assert seen["slots"] and all(not np.any(slot) for slot in seen["slots"])  # moments back at 0
    for key, stored in lth3.get_stored_weights(model).items():
        assert np.all(stored[lth3.get_masks(model)[key] == 0] == 0), key
    assert ticket.rounds[2]["weights_remaining"] < ticket.rounds[1]["weights_remaining"] < 1.0


def test_late_rewinding_rewinds_to_theta_k():
    model, ticket, probe = _run(rounds=2, rewind_step=2)
    assert ticket.theta_k is not None
    later = probe.seen[1]
    assert later["iterations"] == 2
    for key, value in later["weights"].items():
        expected = ticket.theta_k[key] * later["masks"][key] if key in later["masks"] else ticket.theta_k[key]
        np.testing.assert_array_equal(value, expected, err_msg=key)


def test_early_stop_and_test_metrics_are_recorded():
    validation, test = dense_data(32, seed=1), dense_data(48, seed=2)
    _, ticket, _ = _run(rounds=2, eval_every_steps=2, validation_data=validation, test_data=test)
    for record in ticket.rounds:
        assert record["early_stop_step"] in (2, 4)
        assert {"val_loss", "test_loss", "test_accuracy"} <= set(record["early_stop_metrics"])
        assert {"loss", "val_loss", "test_accuracy"} <= set(record["metrics"])
    state = ticket.state_dict()  # JSON-able, as on tf_keras
    assert state["round"] == 1 and len(state["rounds"]) == 2


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs its train step eagerly: nothing is traced")
def test_pruning_and_rewinding_do_not_trace_the_train_step_again():
    loss = CountingLoss()
    traced = []  # loss calls (one per trace) after each round
    counter = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: traced.append(loss.calls))
    _, ticket, _ = _run(rounds=3, loss=loss, extra_callbacks=[counter])
    assert len(ticket.rounds) == 3
    assert traced[0] >= 1 and traced == [traced[0]] * 3  # none after round 0's


def test_a_ticket_saved_from_a_keras3_run_applies_to_a_fresh_model(tmp_path):
    model, ticket, _ = _run(rounds=2)
    ticket.save(str(tmp_path / "ticket"))
    found = lth_keras.load_ticket(str(tmp_path / "ticket"))
    fresh = lth_keras.prune_for_lottery(dense_model(seed=5), pruning_rate=0.5)
    lth_keras.apply_ticket(fresh, found, weights="theta_0")
    for key, mask in lth_keras.get_masks(fresh).items():
        np.testing.assert_array_equal(mask, lth_keras.get_masks(model)[key])
    plain = lth_keras.strip(fresh)
    assert not any(isinstance(layer, lth3.LotteryMask) for layer in plain.layers)
