"""LotteryMask's two ways of masking (lth_keras/keras3/layers.py): multiplying the weight by
its mask in the forward pass, or reading the stored weight and masking only its gradient.

The callback picks the second for its fit when the optimizer keeps a weight whose gradient
is 0 at exactly 0; these tests check that each optimizer on that list does (the two ways
train the same bits), that others keep the first, and that the round-end check catches a
pruned weight set by hand while the stored weights are read."""

import keras
import numpy as np
import pytest
from keras3_models import compiled, dense_data, dense_model, fit, lottery_run, next_masks

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.invariants import InvariantError
from lth_keras.keras3.optimizer_state import ZERO_GRADIENT_KEEPS_ZERO, keeps_zero_gradient_weights_at_zero


def _optimizer(name: str, **kwargs):
    if name == "Ftrl":  # its default rate barely moves a weight in four steps
        kwargs.setdefault("learning_rate", 0.5)
    return getattr(keras.optimizers, name)(**kwargs)


def _pruned_model(multiply_in_forward: bool, optimizer, **compile_kwargs):
    """`dense_model` (with regularizers) with one round of magnitude masks set, each
    LotteryMask masking one way."""
    model = lth3.prune_for_lottery(dense_model(regularized=True), pruning_rate=0.5)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, **compile_kwargs)
    lth3.set_masks(model, next_masks(model))
    for layer in lth3.lottery_layers(model):
        layer.mask_gradients_only(not multiply_in_forward)
    return model


def _trained(multiply_in_forward: bool, optimizer, **compile_kwargs):
    """(masks, weights before, weights after) of four seeded steps, every weight by path."""
    keras.utils.set_random_seed(0)
    model = _pruned_model(multiply_in_forward, optimizer, **compile_kwargs)
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    fit(model, dense_data())
    return lth3.get_masks(model), before, {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def _kernels(weights):
    return {path: w for path, w in weights.items() if path.endswith("/kernel")}


class _Modes(keras.callbacks.Callback):
    """Records, at each batch, whether each LotteryMask multiplies in the forward pass."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def on_train_batch_begin(self, batch, logs=None):
        self.seen |= {layer.multiply_in_forward for layer in lth3.lottery_layers(self.model)}


CASES = [(name, {}) for name in ZERO_GRADIENT_KEEPS_ZERO] + [("Adam", {"jit_compile": True})]


@pytest.mark.parametrize("name, compile_kwargs", CASES)
def test_masking_only_the_gradients_trains_the_same_bits_and_keeps_pruned_weights_zero(name, compile_kwargs):
    """jit_compile=True: XLA on TensorFlow, torch.compile on torch (JAX always jits)."""
    masks, before, expected = _trained(True, _optimizer(name), **compile_kwargs)
    _, _, actual = _trained(False, _optimizer(name), **compile_kwargs)
    assert list(actual) == list(expected)
    for path in expected:
        assert actual[path].tobytes() == expected[path].tobytes(), path
    for (path, kernel), mask in zip(_kernels(actual).items(), masks.values()):
        assert np.all(kernel[mask == 0] == 0), path
        assert not np.array_equal(kernel[mask == 1], before[path][mask == 1]), path  # it trained


def test_muon_would_revive_pruned_weights_stored_as_zero_so_it_trains_with_the_masks_multiplied():
    """Muon orthogonalises a kernel's whole update: a weight whose gradient is 0 moves too."""
    muon = lambda: keras.optimizers.Muon(learning_rate=0.02)  # noqa: E731
    assert not keeps_zero_gradient_weights_at_zero(muon())
    masks, _, after = _trained(False, muon())
    kernels_and_masks = zip(_kernels(after).values(), masks.values())
    assert any(kernel[mask == 0].any() for kernel, mask in kernels_and_masks)  # why Muon is not listed
    keras.utils.set_random_seed(0)
    model = compiled(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5), muon())
    modes, ticket = _Modes(), lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    x, y = dense_data()
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[ticket, modes], verbose=0)
    assert modes.seen == {True} and len(ticket.rounds) == 2
    masks = lth3.get_masks(model)
    for key, stored in lth3.get_stored_weights(model).items():  # zeroed at each epoch's end
        assert np.all(stored[masks[key] == 0] == 0), key


@pytest.mark.parametrize(
    "optimizer, reads_stored",
    [
        (lambda: keras.optimizers.Adam(), True),
        (lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()), True),
        (lambda: keras.optimizers.Adam(use_ema=True), False),  # the average is written into the weights
        (lambda: type("MyAdam", (keras.optimizers.Adam,), {})(), False),  # a subclass may update otherwise
        (lambda: keras.optimizers.ScheduleFreeAdamW(), False),
    ],
    ids=["adam", "loss_scale_sgd", "adam_ema", "adam_subclass", "schedule_free"],
)
def test_which_optimizers_read_the_stored_weights(optimizer, reads_stored):
    assert keeps_zero_gradient_weights_at_zero(optimizer()) is reads_stored


def test_the_callback_reads_stored_weights_during_its_fit_and_multiplies_again_after_it():
    modes = _Modes()
    model, ticket = lottery_run(rounds=2, callbacks=[modes])
    assert modes.seen == {False}
    assert all(layer.multiply_in_forward for layer in lth3.lottery_layers(model))
    assert len(ticket.rounds) == 2


def test_a_pruned_weight_set_by_hand_mid_round_is_caught_at_the_round_end():
    """While the stored weights are read, the epoch's end must not zero them before the check."""
    keras.utils.set_random_seed(0)
    model = compiled(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)

    class Revive(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if ticket.current_round == 1 and batch == 1:
                weight, mask = lth3.masked_variables(self.model)["fc1/kernel"]
                pruned = keras.ops.convert_to_numpy(mask) == 0
                weight.assign(np.where(pruned, 0.5, keras.ops.convert_to_numpy(weight)))

    x, y = dense_data()
    with pytest.raises(InvariantError, match=r"fc1/kernel.*end of round 1"):
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, callbacks=[ticket, Revive()], verbose=0)
    assert all(layer.multiply_in_forward for layer in lth3.lottery_layers(model))  # as without the callback
