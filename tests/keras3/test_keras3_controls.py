"""The controls on Keras 3 models, on whichever backend runs: lth_keras.reinit redraws the
surviving weights from each layer's own initializer, seeded; lth_keras.random_prune keeps the
ticket's per-layer counts at random positions, weights θ₀; as on tf_keras (tests/test_controls.py)."""

import keras
import numpy as np
import pytest
from keras3_models import compiled, dense_data, dense_model, fit, lottery_run, same_arrays

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.controls import SEED_STRIDE
from lth_keras.masks import count_to_prune

RATES = {"fc1/kernel": 0.5, "fc2/kernel": 0.5, "out/kernel": 0.25}  # lottery_run's
ROUNDS = 3


@pytest.fixture(scope="module")
def ticket():
    """Masks, θ₀ and trained weights of a 3-round lottery run (trained once for the module)."""
    model, callback = lottery_run(rounds=ROUNDS)
    return lth3.get_masks(model), callback.theta_0, lth3.take_snapshot(model)


@pytest.fixture
def model(ticket):
    """A fresh prepared dense_model holding the ticket's masks and trained weights."""
    masks, _, trained = ticket
    model = lth_keras.prune_for_lottery(dense_model(seed=9), pruning_rate=0.5)
    lth_keras.set_masks(model, masks)
    lth3.restore_snapshot(model, trained)
    return model


def _remaining(size, rate, rounds):
    for _ in range(rounds):
        size -= count_to_prune(size, rate)
    return size


def test_the_ticket_has_the_scheduled_counts(ticket):
    masks, _, _ = ticket
    for key, mask in masks.items():
        assert int(mask.sum()) == _remaining(mask.size, RATES[key], ROUNDS - 1), key


def test_reinit_keeps_the_masks_zeroes_the_pruned_and_redraws_every_survivor(model, ticket):
    masks, theta_0, _ = ticket
    before = lth3.take_snapshot(model)
    lth_keras.reinit(model, seed=7)
    assert same_arrays(lth_keras.get_masks(model), masks)
    after = lth3.get_stored_weights(model)
    for key, mask in masks.items():
        assert np.all(after[key][mask == 0] == 0), key
        survivors = mask == 1
        assert np.all(after[key][survivors] != before[key][survivors]), key
        assert np.all(after[key][survivors] != theta_0[key][survivors]), key
    snapshot = lth3.take_snapshot(model)
    for key in ("fc1/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance", "out/bias"):
        assert snapshot[key].tobytes() == before[key].tobytes(), key


def _wide_model():
    """Layers big enough for a sample std to be within a few percent of the initializer's."""
    inputs = keras.Input((64,))
    h = keras.layers.Dense(128, kernel_initializer=keras.initializers.GlorotNormal(1), name="glorot")(inputs)
    h = keras.layers.Dense(
        96, kernel_initializer=keras.initializers.RandomUniform(-0.5, 0.5, 2), name="uniform"
    )(h)
    outputs = keras.layers.Dense(64, kernel_initializer=keras.initializers.HeNormal(3), name="he")(h)
    return lth_keras.prune_for_lottery(keras.Model(inputs, outputs), pruning_rate=0.2)


def test_reinit_draws_from_each_layers_own_initializer():
    model = _wide_model()
    lth_keras.set_masks(model, {k: np.zeros_like(m) for k, m in lth_keras.get_masks(model).items()})
    lth_keras.reinit(
        model, seed=11, masks={k: np.ones_like(m) for k, m in lth_keras.get_masks(model).items()}
    )
    weights = lth3.get_stored_weights(model)
    glorot, uniform, he = weights["glorot/kernel"], weights["uniform/kernel"], weights["he/kernel"]
    assert np.std(glorot) == pytest.approx(np.sqrt(2.0 / (64 + 128)), rel=0.05)
    assert np.abs(glorot).max() <= 2 * np.sqrt(2.0 / (64 + 128)) * 1.14  # truncated at 2 sd (of the normal)
    assert -0.5 <= uniform.min() and uniform.max() <= 0.5
    assert np.std(uniform) == pytest.approx(1 / np.sqrt(12), rel=0.05)
    assert np.std(he) == pytest.approx(np.sqrt(2.0 / 96), rel=0.05)
    for weight in weights.values():
        assert abs(weight.mean()) < 4 * weight.std() / np.sqrt(weight.size)


def test_reinit_same_seed_same_weights_other_seed_other_weights(model):
    lth_keras.reinit(model, seed=3)
    first = lth3.get_stored_weights(model)
    lth_keras.reinit(model, seed=3)
    again = lth3.get_stored_weights(model)
    lth_keras.reinit(model, seed=4)
    other = lth3.get_stored_weights(model)
    assert same_arrays(first, again)
    for key in first:
        assert not np.array_equal(first[key], other[key]), key


def test_reinit_draws_weight_i_with_seed_times_the_stride_plus_i_as_on_tf_keras(model, ticket):
    masks = ticket[0]
    lth_keras.reinit(model, seed=3)
    stored = lth3.get_stored_weights(model)
    for index, layer in enumerate(lth3.lottery_layers(model)):  # one pruned weight a layer here
        initializer = layer.layer.kernel_initializer
        config = {**initializer.get_config(), "seed": 3 * SEED_STRIDE + index}
        key = f"{layer.layer.name}/kernel"
        drawn = keras.ops.convert_to_numpy(type(initializer).from_config(config)(masks[key].shape, "float32"))
        assert stored[key].tobytes() == (drawn * masks[key]).tobytes(), key


def test_reinit_sets_the_masks_it_is_given_first(model, ticket):
    ones = {k: np.ones_like(m) for k, m in ticket[0].items()}
    lth_keras.reinit(model, seed=0, masks=ones)
    assert same_arrays(lth_keras.get_masks(model), ones)
    assert all(np.all(w != 0) for w in lth3.get_stored_weights(model).values())


def test_random_prune_keeps_the_counts_at_other_positions_and_theta_0_bit_for_bit(model, ticket):
    masks, theta_0, _ = ticket
    random = lth_keras.random_prune(model, theta_0, seed=5)
    assert same_arrays(lth_keras.get_masks(model), random)
    snapshot = lth3.take_snapshot(model)
    for key, mask in random.items():
        assert mask.sum() == masks[key].sum(), key
        assert not np.array_equal(mask, masks[key]), key
        survivors = mask == 1
        assert snapshot[key][survivors].tobytes() == theta_0[key][survivors].tobytes(), key
        assert np.all(snapshot[key][~survivors] == 0), key
    for key in snapshot:
        if key not in random:
            assert snapshot[key].tobytes() == theta_0[key].tobytes(), key


def test_random_prune_is_seeded(model, ticket):
    masks, theta_0, _ = ticket
    first = lth_keras.random_prune(model, theta_0, seed=5, masks=masks)
    again = lth_keras.random_prune(model, theta_0, seed=5, masks=masks)
    other = lth_keras.random_prune(model, theta_0, seed=6, masks=masks)
    assert same_arrays(first, again)
    for key in first:
        assert not np.array_equal(first[key], other[key]), key


@pytest.mark.parametrize("control", ["reinit", "random_prune"])
def test_a_control_trains_with_its_masks_fixed_and_pruned_weights_0(model, ticket, control):
    masks, theta_0, _ = ticket
    if control == "reinit":
        lth_keras.reinit(model, seed=1)
    else:
        masks = lth_keras.random_prune(model, theta_0, seed=1)
    before = lth3.get_stored_weights(model)
    fit(compiled(model), dense_data())
    assert same_arrays(lth_keras.get_masks(model), masks)
    for key, weight in lth3.get_stored_weights(model).items():
        assert np.all(weight[masks[key] == 0] == 0), key
        assert not np.array_equal(weight, before[key]), key


@pytest.mark.parametrize(
    "seed,error", [(-1, ValueError), (1.5, TypeError), ("1", TypeError), (None, TypeError)]
)
def test_bad_seeds_are_refused_naming_the_seed(model, ticket, seed, error):
    before = lth3.take_snapshot(model)
    with pytest.raises(error, match="`seed`"):
        lth_keras.reinit(model, seed=seed)
    with pytest.raises(error, match="`seed`"):
        lth_keras.random_prune(model, ticket[1], seed=seed)
    assert same_arrays(lth3.take_snapshot(model), before)


def test_reinit_refuses_an_initializer_without_a_seed_naming_the_layer():
    inputs = keras.Input((4,))
    h = keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotNormal(0), name="fine")(inputs)
    outputs = keras.layers.Dense(3, kernel_initializer="zeros", name="zero")(h)
    model = lth_keras.prune_for_lottery(keras.Model(inputs, outputs))
    before = lth3.take_snapshot(model)
    with pytest.raises(ValueError, match="layer 'zero': initializer Zeros takes no seed"):
        lth_keras.reinit(model, seed=0, masks={k: np.zeros_like(m) for k, m in lth3.get_masks(model).items()})
    assert same_arrays(lth3.take_snapshot(model), before)  # refused before any weight or mask changed
    assert all(np.all(m == 1) for m in lth3.get_masks(model).values())


def test_random_prune_refuses_masks_of_another_model_naming_the_weight(model, ticket):
    wrong = {"fc1/kernel": np.ones((3, 3)), "fc2/kernel": np.ones((16, 12)), "out/kernel": np.ones((12, 4))}
    with pytest.raises(ValueError, match="fc1/kernel"):
        lth_keras.random_prune(model, ticket[1], seed=0, masks=wrong)


def test_a_model_that_was_not_prepared_is_refused():
    with pytest.raises(ValueError, match="has no lottery-ticket layers"):
        lth_keras.reinit(dense_model(), seed=0)
    with pytest.raises(TypeError, match="must be a tf_keras or Keras 3 Model, got str"):
        lth_keras.random_prune("model", {}, seed=0)
