"""Masks, snapshots and optimizer state of a Keras 3 lottery model, read and written exactly."""

import keras
import numpy as np
import pytest
from keras3_models import compiled, conv_model, dense_model, fit, prune_round, same_arrays

import lth_keras.keras3 as lth3
from lth_keras.masks import Masks, count_to_prune, random_masks_like
from lth_keras.snapshots import WeightSnapshot

DENSE_KEYS = [
    "fc1/kernel",
    "fc1/bias",
    "bn/gamma",
    "bn/beta",
    "bn/moving_mean",
    "bn/moving_variance",
    "fc2/kernel",
    "fc2/bias",
    "out/kernel",
    "out/bias",
]


def test_each_round_prunes_exactly_count_to_prune_of_each_layer():
    pruned = lth3.prune_for_lottery(conv_model(), pruning_rate=0.2, conv_pruning_rate=0.15)
    rates = lth3.layer_rates(pruned)
    remaining = {key: mask.size for key, mask in lth3.get_masks(pruned).items()}
    for _ in range(3):
        masks = prune_round(pruned)
        for key, mask in masks.items():
            remaining[key] -= count_to_prune(remaining[key], rates[key])
            assert np.count_nonzero(mask) == remaining[key], key
            assert np.count_nonzero(lth3.get_stored_weights(pruned)[key]) == remaining[key], key
        assert same_arrays(lth3.get_masks(pruned), masks)
    assert remaining == {"conv1/kernel": 22, "conv2/kernel": 133, "fc/kernel": 491, "out/kernel": 22}


def test_global_scope_ranks_the_layers_of_one_rate_together():
    pruned = lth3.prune_for_lottery(dense_model(), pruning_rate=0.5, scope="global")
    assert lth3.pruning_groups(pruned) == [["fc1/kernel", "fc2/kernel"], ["out/kernel"]]
    masks = prune_round(pruned)
    assert np.count_nonzero(masks["fc1/kernel"]) + np.count_nonzero(masks["fc2/kernel"]) == (320 + 192) // 2
    assert np.count_nonzero(masks["out/kernel"]) == 48 - count_to_prune(48, 0.25)


def test_set_masks_zeroes_what_they_prune_and_refuses_masks_that_do_not_fit():
    pruned = lth3.prune_for_lottery(dense_model())
    masks = random_masks_like({k: np.eye(*m.shape) for k, m in lth3.get_masks(pruned).items()}, seed=0)
    lth3.set_masks(pruned, dict(masks))
    assert same_arrays(lth3.get_masks(pruned), masks)
    for key, stored in lth3.get_stored_weights(pruned).items():
        np.testing.assert_array_equal(stored, lth3.get_effective_weights(pruned)[key])
        assert np.all(stored[masks[key] == 0] == 0) and np.all(stored[masks[key] == 1] != 0)
    with pytest.raises(ValueError, match=r"no entry for the model's \['out/kernel'\]"):
        lth3.set_masks(pruned, {k: m for k, m in masks.items() if k != "out/kernel"})
    with pytest.raises(ValueError, match=r"mask for layer weight 'fc1/kernel' has shape \(16, 20\)"):
        lth3.set_masks(pruned, {**masks, "fc1/kernel": np.ones((16, 20))})
    assert same_arrays(lth3.get_masks(pruned), masks)


def test_a_snapshot_has_every_weight_but_the_masks_and_restores_bit_for_bit(data):
    pruned = compiled(lth3.prune_for_lottery(dense_model()))
    theta_0 = lth3.take_snapshot(pruned)
    assert isinstance(theta_0, WeightSnapshot)
    assert list(theta_0) == DENSE_KEYS
    assert list(lth3.snapshot_variables(pruned)) == DENSE_KEYS
    fit(pruned, data)
    trained = lth3.take_snapshot(pruned)
    assert not np.array_equal(trained["bn/moving_mean"], theta_0["bn/moving_mean"])
    masks = prune_round(pruned)
    lth3.restore_snapshot(pruned, theta_0)
    after = lth3.take_snapshot(pruned)
    for key in DENSE_KEYS:
        want = theta_0[key] * masks[key] if key in masks else theta_0[key]
        assert after[key].tobytes() == want.astype(after[key].dtype).tobytes(), key
    lth3.restore_snapshot(pruned, {k: v.copy() for k, v in trained.items()})  # a plain dict of arrays
    for key in ("fc1/bias", "bn/moving_variance"):
        assert lth3.take_snapshot(pruned)[key].tobytes() == trained[key].tobytes()
    with pytest.raises(
        ValueError, match=r"weights do not fit this model: no entry for the model's \['out/bias'\]"
    ):
        lth3.restore_snapshot(pruned, {k: v for k, v in trained.items() if k != "out/bias"})
    with pytest.raises(
        ValueError, match=r"'fc1/bias' has shape \(3,\) in the snapshot, \(16,\) in the model"
    ):
        lth3.restore_snapshot(pruned, {**trained, "fc1/bias": np.zeros(3)})


def test_apply_masks_to_weights_zeroes_pruned_weights_put_back_by_hand():
    pruned = lth3.prune_for_lottery(dense_model())
    masks = prune_round(pruned)
    weight, _ = lth3.masked_variables(pruned)["fc2/kernel"]
    weight.assign(np.ones(weight.shape, "float32"))
    lth3.apply_masks_to_weights(pruned)
    np.testing.assert_array_equal(lth3.get_stored_weights(pruned)["fc2/kernel"], masks["fc2/kernel"])
    assert isinstance(lth3.get_masks(pruned), Masks)


def _fresh_values(optimizer_type, model, **kwargs):
    fresh = optimizer_type(**kwargs)
    fresh.build(model.trainable_variables)
    return [keras.ops.convert_to_numpy(v) for v in fresh.variables]


@pytest.mark.parametrize(
    "optimizer_type, kwargs",
    [
        (keras.optimizers.Adam, {"learning_rate": 1e-2}),
        (keras.optimizers.Adagrad, {"learning_rate": 0.1, "initial_accumulator_value": 0.25}),
        (keras.optimizers.SGD, {"learning_rate": 0.1, "momentum": 0.9}),
    ],
)
def test_optimizer_reset_puts_every_variable_back_as_freshly_built(data, optimizer_type, kwargs):
    pruned = compiled(lth3.prune_for_lottery(dense_model()), optimizer_type(**kwargs))
    fit(pruned, data, steps=2)  # made after training began: the fresh state is still known
    reset = lth3.OptimizerReset(pruned.optimizer, pruned)
    fit(pruned, data, steps=2)
    reset.reset(7)
    fresh = _fresh_values(optimizer_type, pruned, **kwargs)
    for variable, want in zip(pruned.optimizer.variables, fresh):
        got = keras.ops.convert_to_numpy(variable)
        if variable is pruned.optimizer.iterations:
            assert int(got) == 7
        else:
            np.testing.assert_array_equal(got, want, err_msg=variable.path)
    if optimizer_type is keras.optimizers.Adagrad:
        assert any(np.all(keras.ops.convert_to_numpy(v) == 0.25) for v in pruned.optimizer.variables)
    with pytest.raises(ValueError, match="`iterations` must be >= 0, got -1"):
        reset.reset(-1)


def test_optimizer_reset_puts_a_loss_scale_optimizer_back_to_its_initial_scale(data):
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(1e-2), initial_scale=64.0, dynamic_growth_steps=2
    )
    pruned = compiled(lth3.prune_for_lottery(dense_model()), optimizer)
    reset = lth3.OptimizerReset(optimizer, pruned)
    fit(pruned, data, steps=3)
    assert (float(optimizer.dynamic_scale), int(optimizer.step_counter)) == (128.0, 1)  # doubled after step 2
    reset.reset(0)
    assert float(optimizer.dynamic_scale) == 64.0
    assert int(optimizer.step_counter) == 0 and int(optimizer.iterations) == 0
    for variable in optimizer.inner_optimizer.variables:
        if variable is not optimizer.iterations and variable.path.endswith(("momentum", "velocity")):
            assert not np.any(keras.ops.convert_to_numpy(variable)), variable.path


def test_a_weight_copy_captures_and_swaps_every_snapshot_weight(data):
    pruned = compiled(lth3.prune_for_lottery(dense_model()))
    copy = lth3.WeightCopy(pruned)
    copy.capture()
    captured = lth3.take_snapshot(pruned)
    fit(pruned, data, steps=2)
    trained = lth3.take_snapshot(pruned)
    copy.swap()
    for key, value in lth3.take_snapshot(pruned).items():
        assert value.tobytes() == captured[key].tobytes(), key
        assert copy.arrays()[key].tobytes() == trained[key].tobytes(), key
    copy.swap()
    for key, value in lth3.take_snapshot(pruned).items():
        assert value.tobytes() == trained[key].tobytes(), key
