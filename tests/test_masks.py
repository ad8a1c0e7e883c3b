"""The mask math on plain arrays: exact counts, thresholds, random masks, files."""

import numpy as np
import pytest

from lth_keras.masks import Masks, count_to_prune, magnitude_prune, random_masks_like
from tests.conftest import expected_remaining


def _weights(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {key: rng.normal(size=shape).astype(np.float32) for key, shape in shapes.items()}


def _ones(weights):
    return {key: np.ones_like(w) for key, w in weights.items()}


SHAPES = {"a/kernel": (30, 20), "b/kernel": (20, 7), "c/kernel": (7, 3)}


@pytest.mark.parametrize("rate", [0.2, 0.1, 0.5, 0.0])
def test_layerwise_counts_are_exact_round_after_round(rate):
    masks = _ones(_weights(SHAPES))
    groups = [[k] for k in SHAPES]
    rates = {k: rate for k in SHAPES}
    for round_index in range(1, 6):
        weights = _weights(SHAPES, seed=round_index)  # "trained" weights change every round
        masks = magnitude_prune(weights, masks, rates, groups)
        for key, shape in SHAPES.items():
            size = int(np.prod(shape))
            kept = int(masks[key].sum())
            assert kept == expected_remaining(size, rate, round_index)
            assert abs(kept - round((1 - rate) ** round_index * size)) <= round_index


def test_prunes_the_smallest_surviving_magnitudes():
    w = {"l/kernel": np.array([[0.5, -0.1, 3.0, -2.0, 0.01, 1.0, -0.7, 0.3, 2.5, -0.05]], np.float32)}
    masks = magnitude_prune(w, _ones(w), {"l/kernel": 0.3}, [["l/kernel"]])
    np.testing.assert_array_equal(masks["l/kernel"][0], [1, 0, 1, 1, 0, 1, 1, 1, 1, 0])


def test_pruned_weights_never_come_back():
    w = _weights({"l/kernel": (50,)})
    mask = {"l/kernel": (np.arange(50) % 2).astype(np.float32)}
    big = {"l/kernel": np.where(mask["l/kernel"] == 0, 100.0, w["l/kernel"]).astype(np.float32)}
    new = magnitude_prune(big, mask, {"l/kernel": 0.2}, [["l/kernel"]])
    assert np.all(new["l/kernel"] <= mask["l/kernel"])
    assert new["l/kernel"].sum() == 25 - count_to_prune(25, 0.2)


def test_ties_still_give_exact_counts():
    w = {"l/kernel": np.ones((10, 10), np.float32)}
    new = magnitude_prune(w, _ones(w), {"l/kernel": 0.37}, [["l/kernel"]])
    assert new["l/kernel"].sum() == 100 - 37


def test_global_uses_one_threshold_across_layers():
    # Layer "small" has all the small weights: global pruning takes them all from it.
    w = {
        "small/kernel": np.full((10,), 0.01, np.float32) * np.arange(1, 11),
        "large/kernel": np.full((30,), 1.0, np.float32) + np.arange(30),
    }
    rates = {k: 0.25 for k in w}
    global_masks = magnitude_prune(w, _ones(w), rates, [list(w)])
    assert global_masks["small/kernel"].sum() == 0
    assert global_masks["large/kernel"].sum() == 30
    layerwise = magnitude_prune(w, _ones(w), rates, [[k] for k in w])
    assert layerwise["small/kernel"].sum() == 10 - count_to_prune(10, 0.25)
    assert layerwise["large/kernel"].sum() == 30 - count_to_prune(30, 0.25)
    # The global threshold: every kept weight is at least as large as every pruned one.
    kept = np.concatenate([np.abs(w[k])[global_masks[k] == 1] for k in w])
    pruned = np.concatenate([np.abs(w[k])[global_masks[k] == 0] for k in w])
    assert kept.min() >= pruned.max()


def test_keys_outside_groups_keep_their_mask():
    w = _weights({"a/kernel": (10,), "b/kernel": (10,)})
    new = magnitude_prune(w, _ones(w), {"a/kernel": 0.5, "b/kernel": 0.5}, [["a/kernel"]])
    assert new["b/kernel"].sum() == 10


def test_a_group_with_mixed_rates_is_refused():
    w = _weights({"a/kernel": (10,), "b/kernel": (10,)})
    with pytest.raises(ValueError, match="rates"):
        magnitude_prune(w, _ones(w), {"a/kernel": 0.5, "b/kernel": 0.2}, [list(w)])


def test_non_finite_weights_are_refused_naming_the_weight():
    w = {"a/kernel": np.array([1.0, np.nan], np.float32)}
    with pytest.raises(ValueError, match="a/kernel"):
        magnitude_prune(w, _ones(w), {"a/kernel": 0.5}, [["a/kernel"]])


def test_random_masks_keep_counts_and_are_seeded():
    w = _weights(SHAPES)
    ticket = magnitude_prune(w, _ones(w), {k: 0.6 for k in w}, [[k] for k in w])
    first = random_masks_like(ticket, seed=3)
    again = random_masks_like(ticket, seed=3)
    other = random_masks_like(ticket, seed=4)
    for key in SHAPES:
        assert first[key].sum() == ticket[key].sum()
        np.testing.assert_array_equal(first[key], again[key])
        assert not np.array_equal(first[key], ticket[key])
        assert not np.array_equal(first[key], other[key])


def test_random_masks_are_uniform_over_positions():
    ticket = {"l/kernel": np.concatenate([np.ones(50), np.zeros(50)]).astype(np.float32)}
    hits = sum(random_masks_like(ticket, seed=s)["l/kernel"] for s in range(400))
    # Each position is kept with probability 1/2: 400 draws, 200 expected, sd 10.
    assert hits.min() > 150 and hits.max() < 250
    assert abs(hits[:50].mean() - hits[50:].mean()) < 10


def test_masks_sparsity_and_files(tmp_path):
    masks = Masks({"a/kernel": np.array([[1, 0], [0, 0]]), "a/bias_like": np.ones(2), "b/kernel": np.ones(4)})
    assert masks.count_remaining == 7
    assert masks.weights_remaining == pytest.approx(7 / 10)
    assert masks.layer_sparsity() == {"a": pytest.approx(0.5), "b": 0.0}
    masks.save(tmp_path)
    loaded = Masks.load(tmp_path)
    assert set(loaded) == set(masks)
    for key in masks:
        np.testing.assert_array_equal(loaded[key], masks[key])
        assert loaded[key].dtype == np.float32


def test_masks_refuse_values_other_than_zero_and_one():
    with pytest.raises(ValueError, match="x/kernel"):
        Masks({"x/kernel": np.array([0.5, 1.0])})


def test_check_matches_names_the_layer():
    masks = Masks({"a/kernel": np.ones((2, 2)), "b/kernel": np.ones(3)})
    with pytest.raises(ValueError, match="c/kernel"):
        masks.check_matches({"a/kernel": (2, 2), "b/kernel": (3,), "c/kernel": (1,)})
    with pytest.raises(ValueError, match="b/kernel"):
        masks.check_matches({"a/kernel": (2, 2)})
    with pytest.raises(ValueError, match="a/kernel"):
        masks.check_matches({"a/kernel": (2, 3), "b/kernel": (3,)})


def test_a_corrupt_mask_file_is_named(tmp_path):
    (tmp_path / "masks.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="masks.npz"):
        Masks.load(tmp_path)
