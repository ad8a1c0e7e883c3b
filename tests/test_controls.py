"""The controls: random reinitialisation and random pruning are really random, and seeded."""

import numpy as np
import pytest

import lth_keras
from tests.conftest import compile_model, dense_data, dense_model

keras = lth_keras.keras


@pytest.fixture
def ticket_model():
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    model.fit(*dense_data(), epochs=3, callbacks=[ticket], verbose=0)
    return model, ticket


def _kernels(model):
    """The pruned weights' variables as stored: weight * mask would be 0 where pruned whatever they hold."""
    return lth_keras.model_state.get_stored_weights(model)


def test_reinit_keeps_the_mask_and_redraws_survivors(ticket_model):
    model, ticket = ticket_model
    masks = lth_keras.get_masks(model)
    before = lth_keras.take_snapshot(model)
    lth_keras.reinit(model, seed=7)
    after = _kernels(model)
    for key, mask in lth_keras.get_masks(model).items():
        np.testing.assert_array_equal(mask, masks[key])
        assert np.all(after[key][mask == 0] == 0)
        assert np.all(after[key][mask == 1] != ticket.theta_0[key][mask == 1])
    # Biases and batch-norm are not redrawn.
    snapshot = lth_keras.take_snapshot(model)
    for name in ("fc1/bias", "bn/gamma", "bn/moving_mean"):
        np.testing.assert_array_equal(snapshot[name], before[name])


def test_reinit_draws_from_each_layers_own_initializer(ticket_model):
    model, _ = ticket_model
    lth_keras.reinit(
        model, seed=11, masks={k: np.ones_like(m) for k, m in lth_keras.get_masks(model).items()}
    )
    for key, weight in _kernels(model).items():
        fan_in, fan_out = weight.shape
        expected_std = np.sqrt(2.0 / (fan_in + fan_out))  # Glorot normal (truncated at 2 sd)
        assert 0.7 * expected_std < weight.std() < 1.1 * expected_std, key
        assert abs(weight.mean()) < 3 * expected_std / np.sqrt(weight.size) + 1e-3, key


def test_reinit_same_seed_same_weights_other_seed_other_weights(ticket_model):
    model, _ = ticket_model
    lth_keras.reinit(model, seed=3)
    first = _kernels(model)
    lth_keras.reinit(model, seed=3)
    again = _kernels(model)
    lth_keras.reinit(model, seed=4)
    other = _kernels(model)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
        assert not np.array_equal(first[key], other[key])
    layers = list(first)
    assert not np.array_equal(first[layers[0]].ravel()[:10], first[layers[1]].ravel()[:10])


def test_random_prune_keeps_counts_and_uses_theta_0(ticket_model):
    model, ticket = ticket_model
    ticket_masks = lth_keras.get_masks(model)
    random = lth_keras.random_prune(model, ticket.theta_0, seed=5)
    snapshot = lth_keras.take_snapshot(model)
    for key, mask in lth_keras.get_masks(model).items():
        np.testing.assert_array_equal(mask, random[key])
        assert mask.sum() == ticket_masks[key].sum()
        assert not np.array_equal(mask, ticket_masks[key])
        np.testing.assert_array_equal(snapshot[key], ticket.theta_0[key] * mask)
    np.testing.assert_array_equal(snapshot["fc1/bias"], ticket.theta_0["fc1/bias"])


def test_random_prune_is_seeded(ticket_model):
    model, ticket = ticket_model
    ticket_masks = lth_keras.get_masks(model)
    first = lth_keras.random_prune(model, ticket.theta_0, seed=5, masks=ticket_masks)
    again = lth_keras.random_prune(model, ticket.theta_0, seed=5, masks=ticket_masks)
    other = lth_keras.random_prune(model, ticket.theta_0, seed=6, masks=ticket_masks)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
        assert not np.array_equal(first[key], other[key])


def test_controls_train_with_their_masks_fixed(ticket_model):
    model, ticket = ticket_model
    random = lth_keras.random_prune(model, ticket.theta_0, seed=1)
    compile_model(model).fit(*dense_data(), epochs=1, verbose=0)
    for key, weight in _kernels(model).items():
        np.testing.assert_array_equal(lth_keras.get_masks(model)[key], random[key])
        assert np.all(weight[random[key] == 0] == 0)


@pytest.mark.parametrize("seed,error", [(-1, ValueError), (1.5, TypeError), ("1", TypeError)])
def test_bad_seeds_are_refused(ticket_model, seed, error):
    model, ticket = ticket_model
    with pytest.raises(error, match="seed"):
        lth_keras.reinit(model, seed=seed)
    with pytest.raises(error, match="seed"):
        lth_keras.random_prune(model, ticket.theta_0, seed=seed)


def test_reinit_refuses_an_initializer_without_a_seed():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, kernel_initializer="zeros", name="zero")(inputs)
    model = lth_keras.prune_for_lottery(keras.Model(inputs, outputs))
    with pytest.raises(ValueError, match="zero"):
        lth_keras.reinit(model, seed=0)


def test_random_prune_refuses_masks_of_another_model(ticket_model):
    model, ticket = ticket_model
    wrong = {"fc1/kernel": np.ones((3, 3)), "fc2/kernel": np.ones((16, 12)), "out/kernel": np.ones((12, 4))}
    with pytest.raises(ValueError, match="fc1/kernel"):
        lth_keras.random_prune(model, ticket.theta_0, seed=0, masks=wrong)
