"""Deconstructing tickets on tf_keras models: the callback's mask criteria against the rewind
point, the supermask accuracy and sign stability in each round's record, and the signs control
(lth_keras.reinit_keep_signs). Mechanics are checked against direct computations."""

import numpy as np
import pytest

import lth_keras
from lth_keras.masks import count_to_prune
from lth_keras.model_state import get_stored_weights, restore_snapshot
from tests.conftest import compile_model, dense_data, dense_model
from tests.helpers import criteria_checks
from tests.helpers.criteria_checks import check_survivors_score_highest, check_threshold, sign_stability

RATES = {"fc1/kernel": 0.5, "fc2/kernel": 0.5, "out/kernel": 0.25}
TEST = dense_data(200, seed=5)


class Recording(lth_keras.LotteryTicketCallback):
    """Keeps each round's masks and weights as the round ends (before the next one prunes)."""

    def __init__(self, **kwargs):
        super().__init__(verbose=0, test_data=TEST, **kwargs)
        self.ends = []

    def on_round_end(self, record):
        self.ends.append((lth_keras.get_masks(self.model), lth_keras.get_effective_weights(self.model)))


def _run(rounds=3, **kwargs):
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    ticket = Recording(epochs_per_round=1, **kwargs)
    model.fit(*dense_data(), epochs=rounds, callbacks=[ticket], verbose=0)
    return model, ticket


@pytest.mark.parametrize(
    "criterion, rewind_step", [(c, 0) for c in criteria_checks.SCORES] + [("movement", 2), ("large_init", 2)]
)
def test_the_callback_keeps_the_survivors_its_criterion_scores_highest(criterion, rewind_step):
    _, ticket = _run(criterion=criterion, rewind_step=rewind_step)
    check_survivors_score_highest(ticket.ends, ticket.rewind_weights, criterion, RATES)  # θ₀, or θ_k


def test_random_prunes_exact_counts_unlike_magnitude_and_is_seeded():
    _, ticket = _run(criterion="random", criterion_seed=4)
    _, again = _run(criterion="random", criterion_seed=4)
    _, magnitude = _run()
    for (masks, _), (next_masks, _) in zip(ticket.ends, ticket.ends[1:]):
        for key, rate in RATES.items():
            removed = int(masks[key].sum() - next_masks[key].sum())
            assert removed == count_to_prune(int(masks[key].sum()), rate)
    last = ticket.ends[-1][0]
    assert all(np.array_equal(last[k], again.ends[-1][0][k]) for k in RATES)
    assert not all(np.array_equal(last[k], magnitude.ends[-1][0][k]) for k in RATES)


def test_threshold_removes_exactly_the_survivors_under_s_sigma_and_records_the_counts():
    _, ticket = _run(criterion="threshold", threshold_scale=0.8)
    check_threshold(ticket.ends, ticket.rounds, 0.8, RATES)
    assert ticket.rounds[0]["pruned"] == {}


def test_supermask_accuracy_is_the_masked_rewind_weights_evaluated_before_training():
    model, ticket = _run(rounds=3)
    for record, (masks, _) in zip(ticket.rounds, ticket.ends):
        lth_keras.set_masks(model, masks)
        restore_snapshot(model, ticket.theta_0)
        direct = model.evaluate(*TEST, batch_size=1000, verbose=0, return_dict=True)
        supermask = record["supermask_metrics"]
        assert supermask["test_accuracy"] == pytest.approx(direct["accuracy"], abs=1e-7)
        assert supermask["test_loss"] == pytest.approx(direct["loss"], rel=1e-6)
        assert supermask["test_accuracy"] != record["metrics"]["test_accuracy"] or record["round"] == 0


def test_without_test_data_there_is_no_supermask():
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    model.fit(*dense_data(), epochs=2, callbacks=[ticket], verbose=0)
    assert [r["supermask_metrics"] for r in ticket.rounds] == [{}, {}]


def test_sign_stability_is_the_direct_count_of_survivors_keeping_their_rewind_sign():
    _, ticket = _run(rounds=3, rewind_step=2)
    for record, (masks, final) in zip(ticket.rounds, ticket.ends):
        direct = sign_stability(masks, final, ticket.theta_k, RATES)
        assert record["sign_stability"] == pytest.approx(direct, abs=1e-15)
        assert 0.5 < record["sign_stability"] <= 1.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(criterion="big"), ValueError, "`criterion` must be one of .*'big'"),
        (dict(criterion="threshold", threshold_scale=-1.0), ValueError, "`threshold_scale`.*-1.0"),
        (dict(threshold_scale=0.3), ValueError, "`threshold_scale`=0.3 is used by criterion=.threshold."),
        (dict(criterion_seed=-1), ValueError, "`criterion_seed` must be >= 0"),
    ],
)
def test_bad_criterion_arguments_are_refused_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        lth_keras.LotteryTicketCallback(epochs_per_round=1, **kwargs)


def test_prune_for_lottery_refuses_a_criterion_saying_it_is_the_callbacks():
    with pytest.raises(TypeError, match=r"LotteryTicketCallback\(criterion='movement'\)"):
        lth_keras.prune_for_lottery(dense_model(), criterion="movement")


# --- the signs control ---------------------------------------------------------------------


@pytest.fixture
def ticket_model():
    model, ticket = _run(rounds=3)
    return model, ticket


def test_signs_keeps_the_masks_and_every_sign_of_theta_0_with_new_magnitudes(ticket_model):
    model, ticket = ticket_model
    masks = lth_keras.get_masks(model)
    before = lth_keras.take_snapshot(model)
    lth_keras.reinit_keep_signs(model, ticket.theta_0, seed=7)
    after = get_stored_weights(model)
    for key, mask in lth_keras.get_masks(model).items():
        np.testing.assert_array_equal(mask, masks[key])
        alive = mask == 1
        assert np.all(after[key][~alive] == 0)
        np.testing.assert_array_equal(np.sign(after[key][alive]), np.sign(ticket.theta_0[key][alive]))
        assert np.all(np.abs(after[key][alive]) != np.abs(ticket.theta_0[key][alive]))
    snapshot = lth_keras.take_snapshot(model)
    for name in ("fc1/bias", "bn/gamma", "bn/moving_mean"):
        np.testing.assert_array_equal(snapshot[name], before[name])


def test_signs_magnitudes_are_the_seeded_initializer_draws_of_reinit(ticket_model):
    model, ticket = ticket_model
    lth_keras.reinit_keep_signs(model, ticket.theta_0, seed=3)
    signed = get_stored_weights(model)
    lth_keras.reinit(model, seed=3)
    drawn = get_stored_weights(model)
    for key in signed:
        np.testing.assert_array_equal(np.abs(signed[key]), np.abs(drawn[key]))
    lth_keras.reinit_keep_signs(model, ticket.theta_0, seed=4)
    assert not np.array_equal(get_stored_weights(model)["fc1/kernel"], signed["fc1/kernel"])


def test_signs_magnitudes_have_the_initializers_spread():
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    theta_0 = lth_keras.take_snapshot(model)
    lth_keras.reinit_keep_signs(model, theta_0, seed=11)
    for key, weight in get_stored_weights(model).items():
        fan_in, fan_out = weight.shape
        expected_std = np.sqrt(2.0 / (fan_in + fan_out))  # Glorot normal (truncated at 2 sd)
        assert 0.7 * expected_std < weight.std() < 1.1 * expected_std, key
        np.testing.assert_array_equal(np.sign(weight), np.sign(theta_0[key]))
        assert not np.allclose(np.abs(weight), np.abs(theta_0[key]))


def test_signs_refuses_a_theta_0_that_does_not_fit_and_bad_seeds(ticket_model):
    model, ticket = ticket_model
    before = get_stored_weights(model)
    partial = {k: v for k, v in ticket.theta_0.items() if k != "fc2/kernel"}
    with pytest.raises(ValueError, match="'fc2/kernel' is \\(16, 12\\), `theta_0` has no entry"):
        lth_keras.reinit_keep_signs(model, partial, seed=1)
    with pytest.raises(ValueError, match="`seed` must be >= 0"):
        lth_keras.reinit_keep_signs(model, ticket.theta_0, seed=-1)
    after = get_stored_weights(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
