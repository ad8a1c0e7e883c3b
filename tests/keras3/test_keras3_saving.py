"""A Keras 3 lottery model saved as .keras loads with its masks, rates and scope; strip."""

import keras
import numpy as np
import pytest
from keras3_models import compiled, dense_model, fit, mixed_model, prune_round, same_arrays

import lth_keras.keras3 as lth3

X = np.random.default_rng(2).normal(size=(8, 20)).astype("float32")


@pytest.fixture
def trained_ticket(data):
    """A dense model trained a little, then pruned one round with global scope."""
    pruned = compiled(lth3.prune_for_lottery(dense_model(), pruning_rate=0.4, scope="global"))
    fit(pruned, data, steps=2)
    prune_round(pruned)
    return pruned


@pytest.mark.parametrize("how", ["custom_objects", "registered", "load_model"])
def test_save_and_load_keep_masks_rates_scope_and_weights(trained_ticket, tmp_path, how):
    path = str(tmp_path / "ticket.keras")
    assert lth3.marked_round(trained_ticket) is None
    lth3.mark_round(trained_ticket, 2)
    trained_ticket.save(path)
    if how == "custom_objects":
        loaded = keras.models.load_model(path, custom_objects=lth3.custom_objects())
    elif how == "registered":
        loaded = keras.models.load_model(path)
    else:
        loaded = lth3.load_model(path)
    assert same_arrays(lth3.get_masks(loaded), lth3.get_masks(trained_ticket))
    assert lth3.layer_rates(loaded) == {"fc1/kernel": 0.4, "fc2/kernel": 0.4, "out/kernel": 0.2}
    assert lth3.pruning_groups(loaded) == lth3.pruning_groups(trained_ticket)
    assert lth3.marked_round(loaded) == 2
    want = lth3.take_snapshot(trained_ticket)
    got = lth3.take_snapshot(loaded)
    assert list(got) == list(want)
    for key in want:
        assert got[key].tobytes() == want[key].tobytes(), key
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), trained_ticket.predict(X, verbose=0))


def test_strip_gives_a_plain_model_with_pruned_weights_exactly_0(trained_ticket, tmp_path):
    masks = lth3.get_masks(trained_ticket)
    plain = lth3.strip(trained_ticket)
    assert not any(isinstance(layer, lth3.LotteryMask) for layer in lth3.flat_layers(plain))
    assert [layer.name for layer in plain.layers] == [layer.name for layer in dense_model().layers]
    for key, mask in masks.items():
        layer, weight = key.split("/")
        value = keras.ops.convert_to_numpy(getattr(plain.get_layer(layer), weight))
        assert np.all(value[mask == 0] == 0) and np.all(value[mask == 1] != 0), key
    np.testing.assert_allclose(plain.predict(X, verbose=0), trained_ticket.predict(X, verbose=0), rtol=1e-6)
    path = str(tmp_path / "plain.keras")
    plain.save(path)
    np.testing.assert_array_equal(
        keras.models.load_model(path).predict(X, verbose=0), plain.predict(X, verbose=0)
    )
    with pytest.raises(ValueError, match="has no lottery-ticket layers"):
        lth3.strip(plain)


def test_strip_keeps_every_kind_and_leaves_the_lottery_model_as_it_was():
    pruned = lth3.prune_for_lottery(mixed_model(), pruning_rate=0.5)
    masks = prune_round(pruned)
    before = lth3.take_snapshot(pruned)
    plain = lth3.strip(pruned)
    assert [type(layer).__name__ for layer in lth3.flat_layers(plain)] == [
        type(layer).__name__ for layer in lth3.flat_layers(mixed_model())
    ]
    assert same_arrays(lth3.get_masks(pruned), masks)
    for key, value in lth3.take_snapshot(pruned).items():
        assert value.tobytes() == before[key].tobytes()
