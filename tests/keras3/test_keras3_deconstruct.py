"""Deconstructing tickets on Keras 3 models, on whichever backend runs: the callback's mask
criteria against the rewind point, supermask accuracy and sign stability in the records, and
the signs control (lth_keras.reinit_keep_signs); as on tf_keras (tests/test_deconstruct.py)."""

import keras
import numpy as np
import pytest
from keras3_models import dense_data, dense_model, lottery_run

import lth_keras
import lth_keras.keras3 as lth3
from tests.helpers.criteria_checks import check_survivors_score_highest, check_threshold, sign_stability

RATES = {"fc1/kernel": 0.5, "fc2/kernel": 0.5, "out/kernel": 0.25}  # lottery_run's
TEST = dense_data(100, seed=5)


class RoundEnds(keras.callbacks.Callback):
    """After the lottery callback: each round's masks and weights as it ends (one epoch a round)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append((lth3.get_masks(self.model), lth3.get_effective_weights(self.model)))


def _run(**kwargs):
    ends = RoundEnds()
    model, ticket = lottery_run(rounds=3, callbacks=[ends], test_data=TEST, **kwargs)
    return model, ticket, ends.ends


@pytest.mark.parametrize(
    "criterion, rewind_step", [("large_init", 0), ("magnitude_increase", 0), ("movement", 2)]
)
def test_the_callback_keeps_the_survivors_its_criterion_scores_highest(criterion, rewind_step):
    _, ticket, ends = _run(criterion=criterion, rewind_step=rewind_step)
    check_survivors_score_highest(ends, ticket.rewind_weights, criterion, RATES)


def test_threshold_removes_exactly_the_survivors_under_s_sigma_and_records_the_counts():
    _, ticket, ends = _run(criterion="threshold", threshold_scale=0.8)
    check_threshold(ends, ticket.rounds, 0.8, RATES)


def test_supermask_accuracy_and_sign_stability_are_the_direct_measures():
    model, ticket, ends = _run()
    for record, (masks, final) in zip(ticket.rounds, ends):
        direct = sign_stability(masks, final, ticket.theta_0, RATES)
        assert record["sign_stability"] == pytest.approx(direct, abs=1e-15)
    for record, (masks, _) in zip(ticket.rounds, ends):
        lth3.set_masks(model, masks)
        lth3.restore_snapshot(model, ticket.theta_0)
        direct = model.evaluate(*TEST, batch_size=1000, verbose=0, return_dict=True)
        assert record["supermask_metrics"]["test_accuracy"] == pytest.approx(direct["accuracy"], abs=1e-7)
        assert record["supermask_metrics"]["test_loss"] == pytest.approx(direct["loss"], rel=1e-6)


def test_signs_keeps_every_sign_of_theta_0_with_reinits_magnitudes_and_the_initializers_spread():
    model, ticket, _ = _run()
    masks = lth3.get_masks(model)
    lth_keras.reinit_keep_signs(model, ticket.theta_0, seed=3)
    signed = lth3.get_stored_weights(model)
    lth_keras.reinit(model, seed=3)
    drawn = lth3.get_stored_weights(model)
    for key, mask in masks.items():
        alive = mask == 1
        assert np.all(signed[key][~alive] == 0)
        np.testing.assert_array_equal(np.sign(signed[key][alive]), np.sign(ticket.theta_0[key][alive]))
        np.testing.assert_array_equal(np.abs(signed[key]), np.abs(drawn[key]))
    fresh = lth_keras.prune_for_lottery(dense_model(seed=4), pruning_rate=0.5)
    theta_0 = lth3.take_snapshot(fresh)
    lth_keras.reinit_keep_signs(fresh, theta_0, seed=11)
    for key, weight in lth3.get_stored_weights(fresh).items():
        expected_std = np.sqrt(2.0 / sum(weight.shape))  # Glorot normal (truncated at 2 sd)
        assert 0.7 * expected_std < weight.std() < 1.1 * expected_std, key
        np.testing.assert_array_equal(np.sign(weight), np.sign(theta_0[key]))
        assert not np.allclose(np.abs(weight), np.abs(theta_0[key]))
