"""Masks in training: the forward pass uses them, pruned weights stay exactly 0 after every
step, and new masks apply without the compiled train step being traced again."""

import keras
import numpy as np
import pytest
from keras3_models import (
    BACKEND,
    CountingLoss,
    compiled,
    dense_model,
    dense_data,
    fit,
    mixed_model,
    next_masks,
    prune_round,
    same_arrays,
)

import lth_keras.keras3 as lth3


def _assert_pruned_are_zero(model, masks):
    for key, stored in lth3.get_stored_weights(model).items():
        assert np.all(stored[masks[key] == 0] == 0), key
        assert np.count_nonzero(stored[masks[key] == 1]) > 0, key


def test_new_masks_between_fits_are_honoured_without_tracing_the_train_step_again(data):
    pruned = lth3.prune_for_lottery(dense_model(), pruning_rate=0.5)
    loss = CountingLoss()
    pruned.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    reset = lth3.OptimizerReset(pruned.optimizer, pruned)
    fit(pruned, data)
    traced = loss.calls
    for _ in range(2):  # two rounds: masks 1 -> 50% -> 25% (output layer at 25% a round)
        masks = prune_round(pruned)
        reset.reset(0)
        before = lth3.get_stored_weights(pruned)
        fit(pruned, data)
        _assert_pruned_are_zero(pruned, masks)
        assert same_arrays(lth3.get_masks(pruned), masks)
        assert not np.array_equal(before["fc1/kernel"], lth3.get_stored_weights(pruned)["fc1/kernel"])
    assert lth3.get_masks(pruned).layer_sparsity() == {"fc1": 0.75, "fc2": 0.75, "out": 0.4375}
    if BACKEND != "torch":  # torch runs the step eagerly: nothing is traced
        assert loss.calls == traced


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_masks_set_between_two_batches_hold_after_every_later_step_with_no_optimizer_reset(optimizer):
    """In a callback, mid-epoch (under JAX the variables are then emptied until the epoch ends);
    Adam's moments of the weights pruned then are not 0 until set_masks puts them back."""
    pruned = compiled(
        lth3.prune_for_lottery(dense_model(), pruning_rate=0.5), keras.optimizers.get(optimizer)
    )
    seen = []

    class Prune(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                seen.append(next_masks(self.model))
                lth3.set_masks(self.model, seen[0])
            elif batch > 1:
                seen.append(lth3.get_stored_weights(self.model))

    fit(pruned, dense_data(96), steps=5, callbacks=[Prune()])
    masks, after_each_step = seen[0], seen[1:]
    assert len(after_each_step) == 3
    for stored in after_each_step:
        for key, weight in stored.items():
            assert np.all(weight[masks[key] == 0] == 0), key
    assert not np.array_equal(after_each_step[0]["fc2/kernel"], after_each_step[-1]["fc2/kernel"])
    assert same_arrays(lth3.get_masks(pruned), masks)
    assert int(keras.ops.convert_to_numpy(pruned.optimizer.iterations)) == 5
    if optimizer == "adam":  # the other slots are as training left them
        kernel = lth3.masked_variables(pruned)["fc1/kernel"][0]
        moments = [v for v in pruned.optimizer.variables if v.shape == kernel.shape]
        kept = masks["fc1/kernel"] == 1
        assert moments and all(np.count_nonzero(keras.ops.convert_to_numpy(m)[kept]) for m in moments)


def test_the_forward_pass_uses_weight_times_mask_whatever_the_weight_holds():
    model = dense_model()
    pruned = lth3.prune_for_lottery(model, pruning_rate=0.5)
    masks = prune_round(pruned)
    weight, _ = lth3.masked_variables(pruned)["fc1/kernel"]
    weight.assign(keras.ops.convert_to_numpy(model.get_layer("fc1").kernel))  # nonzero where pruned
    assert np.count_nonzero(lth3.get_stored_weights(pruned)["fc1/kernel"][masks["fc1/kernel"] == 0])
    for layer in ("fc1", "fc2", "out"):
        kernel = model.get_layer(layer).kernel
        kernel.assign(keras.ops.convert_to_numpy(kernel) * masks[f"{layer}/kernel"])
    x = np.random.default_rng(1).normal(size=(8, 20)).astype("float32")
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pruned(x)), want, rtol=1e-5, atol=1e-6)


def test_embedding_and_convolution_tables_are_masked_in_the_forward_pass_too():
    model = mixed_model()
    pruned = lth3.prune_for_lottery(model, pruning_rate=0.5)
    masks = prune_round(pruned)
    for key, (weight, _) in lth3.masked_variables(pruned).items():
        layer, name = key.split("/")
        weight.assign(keras.ops.convert_to_numpy(getattr(model.get_layer(layer), name)))  # nonzero again
    x = np.random.default_rng(1).integers(0, 11, size=(8, 6)).astype("int32")
    plain = lth3.strip(pruned)  # plain layers holding weight * mask
    for want, got, full in zip(
        plain.predict(x, verbose=0), pruned.predict(x, verbose=0), model.predict(x, verbose=0)
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, full, rtol=1e-3)
    assert all(np.count_nonzero(mask == 0) for mask in masks.values())
