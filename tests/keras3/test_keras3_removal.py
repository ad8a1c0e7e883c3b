"""lth_keras.remove_ticket on Keras 3 models, on whichever backend runs: the weights a ticket kept
are drawn afresh from their own layers' seeded initializers, every other weight keeps its value
bit for bit, the model's masks stay as they were; as on tf_keras (tests/test_removal.py)."""

import keras
import numpy as np
import pytest
from keras3_models import dense_model

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.controls import SEED_STRIDE, seeded_initializer


def _prepared():
    return lth_keras.prune_for_lottery(dense_model(seed=3), pruning_rate=0.5)


def _hand_masks(model):
    rng = np.random.default_rng(1)
    return {k: (rng.random(m.shape) < 0.3).astype(np.float32) for k, m in lth_keras.get_masks(model).items()}


def test_remove_ticket_redraws_exactly_the_survivors_from_their_initializers():
    model = _prepared()
    theta_0 = lth3.take_snapshot(model)
    masks = _hand_masks(model)
    lth_keras.remove_ticket(model, masks, seed=5)
    after = lth3.take_snapshot(model)
    assert after.keys() == theta_0.keys() and set(masks) < set(after)
    weights = lth3.pruned_weights(model)
    for index, (layer, name, variable) in enumerate(weights):
        key = f"{layer.name}/{name}"
        draw = keras.ops.convert_to_numpy(
            seeded_initializer(layer, name, 5 * SEED_STRIDE + index)(tuple(variable.shape))
        )
        kept = masks[key] > 0
        assert kept.sum() > 0 and np.all(after[key][kept] != theta_0[key][kept]), key
        np.testing.assert_array_equal(after[key][kept], draw[kept], err_msg=key)
    for key in after:
        kept = masks[key] > 0 if key in masks else np.zeros(after[key].shape, bool)
        assert after[key][~kept].tobytes() == theta_0[key][~kept].tobytes(), key
    assert lth_keras.get_masks(model).weights_remaining == 1.0


def test_remove_ticket_refuses_masks_that_do_not_fit_touching_nothing():
    model = _prepared()
    before = lth3.take_snapshot(model)
    masks = _hand_masks(model)
    masks["fc1/kernel"] = masks["fc1/kernel"][:-1]
    with pytest.raises(ValueError, match="fc1/kernel"):
        lth_keras.remove_ticket(model, masks, seed=1)
    after = lth3.take_snapshot(model)
    assert all(after[k].tobytes() == before[k].tobytes() for k in before)
