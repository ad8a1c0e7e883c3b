"""Mask criteria on hand-made arrays (lth_keras.criteria): each ranks as defined, the rate-based
ones remove exactly the scheduled count (layerwise and global), threshold removes exactly the
survivors under s·σ, and the sign measures are direct counts."""

import numpy as np
import pytest

from lth_keras import criteria
from lth_keras.masks import count_to_prune, magnitude_prune

ONE = {"l/kernel": 0.5}
GROUP = [["l/kernel"]]


def _one(values):
    return {"l/kernel": np.array(values, dtype=np.float32)}


def _kept(masks):
    return np.flatnonzero(masks["l/kernel"]).tolist()


# w_f and w_i of four weights; each criterion's two keepers (rate 0.5 removes 2 of 4):
# |w_f| = 4, 1, 3, 2; |w_i| = 1, 5, 2, 3; |w_f| - |w_i| = 3, -4, 1, -1; |w_f - w_i| = 5, 6, 1, 1
FINAL = [4.0, -1.0, 3.0, -2.0]
INITIAL = [-1.0, 5.0, 2.0, -3.0]


@pytest.mark.parametrize(
    "criterion, kept",
    [
        ("large_final", [0, 2]),
        ("large_init", [1, 3]),
        ("magnitude_increase", [0, 2]),
        ("movement", [0, 1]),
    ],
)
def test_each_criterion_keeps_the_weights_it_scores_highest(criterion, kept):
    masks = criteria.prune(criterion, _one(FINAL), _one([1, 1, 1, 1]), ONE, GROUP, initial=_one(INITIAL))
    assert _kept(masks) == kept


def test_magnitude_increase_and_large_final_differ_where_the_initial_magnitudes_do():
    final, initial = _one([3.0, 2.0, 1.0, 0.5]), _one([0.1, 0.1, 2.9, 2.9])
    ones = _one([1, 1, 1, 1])
    assert _kept(criteria.prune("large_final", final, ones, ONE, GROUP, initial=initial)) == [0, 1]
    # |w_f| - |w_i| = 2.9, 1.9, -1.9, -2.4
    assert _kept(criteria.prune("magnitude_increase", final, ones, ONE, GROUP, initial=initial)) == [0, 1]
    initial = _one([2.9, 1.9, 0.0, 0.0])  # now 0.1, 0.1, 1.0, 0.5
    assert _kept(criteria.prune("magnitude_increase", final, ones, ONE, GROUP, initial=initial)) == [2, 3]


def test_pruned_weights_stay_pruned_and_only_survivors_are_ranked():
    # Weight 0 is pruned already; of the other three (rate 0.5: round(1.5) = 2 go) only the
    # highest-moving survives, although weight 0 moved most.
    masks = criteria.prune(
        "movement", _one([9.0, 1.0, 2.0, 3.0]), _one([0, 1, 1, 1]), ONE, GROUP, initial=_one([0, 0, 0, 0])
    )
    assert _kept(masks) == [3]


def test_large_final_is_magnitude_prune_bit_for_bit():
    rng = np.random.default_rng(0)
    weights = {"a/kernel": rng.normal(size=(30, 20)), "b/kernel": rng.normal(size=(20, 7))}
    masks = {k: (rng.random(w.shape) > 0.3).astype(np.float32) for k, w in weights.items()}
    rates = {"a/kernel": 0.2, "b/kernel": 0.2}
    for groups in ([["a/kernel"], ["b/kernel"]], [["a/kernel", "b/kernel"]]):
        ours = criteria.prune("large_final", weights, masks, rates, groups, initial=weights)
        theirs = magnitude_prune(weights, masks, rates, groups)
        for key in weights:
            assert ours[key].tobytes() == theirs[key].tobytes()


@pytest.mark.parametrize("criterion", [c for c in criteria.CRITERIA if c != "threshold"])
@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_rate_based_criteria_remove_exactly_the_scheduled_count(criterion, scope):
    rng = np.random.default_rng(1)
    shapes = {"a/kernel": (13, 11), "b/kernel": (11, 5), "out/kernel": (5, 3)}
    rates = {"a/kernel": 0.2, "b/kernel": 0.2, "out/kernel": 0.1}
    groups = [["a/kernel"], ["b/kernel"], ["out/kernel"]]
    if scope == "global":
        groups = [["a/kernel", "b/kernel"], ["out/kernel"]]
    initial = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    masks = {k: np.ones(s, np.float32) for k, s in shapes.items()}
    for round_index in range(4):
        final = {k: w + rng.normal(size=w.shape).astype(np.float32) for k, w in initial.items()}
        new = criteria.prune(
            criterion, final, masks, rates, groups, initial=initial, rng=np.random.default_rng(round_index)
        )
        for group in groups:
            before = sum(int(masks[k].sum()) for k in group)
            after = sum(int(new[k].sum()) for k in group)
            assert before - after == count_to_prune(before, rates[group[0]]), (group, round_index)
        for key in shapes:
            assert not np.any((masks[key] == 0) & (new[key] == 1)), "masks only shrink"
        masks = new


def test_global_ranks_every_layer_of_a_group_together():
    final = {"a/kernel": np.array([5.0, 6.0, 7.0, 8.0]), "b/kernel": np.array([0.1, 0.2, 9.0, 0.3])}
    initial = {k: np.zeros(4) for k in final}
    masks = {k: np.ones(4) for k in final}
    rates = {"a/kernel": 0.4, "b/kernel": 0.4}  # 3 of the 8 go: b's three smallest
    new = criteria.prune("movement", final, masks, rates, [["a/kernel", "b/kernel"]], initial=initial)
    assert new["a/kernel"].tolist() == [1, 1, 1, 1] and new["b/kernel"].tolist() == [0, 0, 1, 0]


def test_random_is_seeded_by_its_generator_and_ignores_the_weights():
    final, ones = _one(np.arange(40.0)), _one(np.ones(40))
    rates = {"l/kernel": 0.5}
    first = criteria.prune("random", final, ones, rates, GROUP, rng=np.random.default_rng([3, 1]))
    again = criteria.prune("random", final, ones, rates, GROUP, rng=np.random.default_rng([3, 1]))
    other = criteria.prune("random", final, ones, rates, GROUP, rng=np.random.default_rng([3, 2]))
    assert _kept(first) == _kept(again) != _kept(other)
    assert _kept(first) != list(range(20, 40))  # not the largest magnitudes


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.7])
def test_threshold_removes_exactly_the_survivors_under_s_sigma_of_the_survivors(scale):
    rng = np.random.default_rng(2)
    final = {"a/kernel": rng.normal(size=(40, 30)).astype(np.float32)}
    masks = {"a/kernel": (rng.random((40, 30)) > 0.25).astype(np.float32)}
    new = criteria.prune("threshold", final, masks, {"a/kernel": 0.2}, [["a/kernel"]], threshold_scale=scale)
    survivors = final["a/kernel"][masks["a/kernel"] == 1]
    cut = scale * survivors.astype(np.float64).std()
    expected = (masks["a/kernel"] == 1) & (np.abs(final["a/kernel"]) >= cut)
    np.testing.assert_array_equal(new["a/kernel"], expected.astype(np.float32))
    assert (
        0
        < int(masks["a/kernel"].sum() - new["a/kernel"].sum())
        != count_to_prune(int(masks["a/kernel"].sum()), 0.2)
    )


def test_threshold_pools_sigma_over_a_global_group_and_leaves_rate_0_alone():
    final = {
        "a/kernel": np.array([1.0, -1.0, 1.0, -1.0]),
        "b/kernel": np.array([10.0, -10.0, 0.5, 3.0]),
        "c/kernel": np.array([0.0, 0.001, 5.0, 5.0]),
    }
    masks = {k: np.ones(4) for k in final}
    rates = {"a/kernel": 0.2, "b/kernel": 0.2, "c/kernel": 0.0}
    groups = [["a/kernel", "b/kernel"], ["c/kernel"]]
    new = criteria.prune("threshold", final, masks, rates, groups, threshold_scale=0.5)
    cut = 0.5 * np.concatenate([final["a/kernel"], final["b/kernel"]]).std()  # 2.57
    assert cut > 1 and new["a/kernel"].tolist() == [0, 0, 0, 0]  # a layer alone: std 1, nothing under 0.5
    assert new["b/kernel"].tolist() == [1, 1, 0, 1]
    assert new["c/kernel"].tolist() == [1, 1, 1, 1]


def test_pruned_per_layer_counts_what_the_new_masks_removed():
    before = {"a/kernel": np.array([1, 1, 0, 1]), "a/bias": np.array([1, 1]), "b/kernel": np.array([1, 1])}
    after = {"a/kernel": np.array([0, 1, 0, 0]), "a/bias": np.array([1, 0]), "b/kernel": np.array([1, 1])}
    assert criteria.pruned_per_layer(before, after) == {"a": 3, "b": 0}


def test_sign_stability_is_the_fraction_of_survivors_that_kept_their_sign():
    final = {"a/kernel": np.array([1.0, -2.0, 3.0, -4.0]), "b/kernel": np.array([0.5, 0.5])}
    initial = {"a/kernel": np.array([2.0, 2.0, -1.0, -1.0]), "b/kernel": np.array([-0.1, 0.1])}
    masks = {"a/kernel": np.array([1, 1, 0, 1]), "b/kernel": np.array([1, 1])}
    # survivors: a0 same, a1 flipped, a3 same, b0 flipped, b1 same: 3 of 5
    assert criteria.sign_stability(final, initial, masks) == pytest.approx(3 / 5)
    assert criteria.sign_stability(final, initial, {k: np.zeros_like(m) for k, m in masks.items()}) is None


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(criterion="largest"), ValueError, "`criterion` must be one of .*'largest'"),
        (dict(criterion="threshold", threshold_scale=-0.5), ValueError, "`threshold_scale`.*> 0, got -0.5"),
        (dict(criterion="threshold", threshold_scale=0), ValueError, "`threshold_scale`.*> 0, got 0"),
        (dict(criterion="threshold", threshold_scale=float("inf")), ValueError, "`threshold_scale`"),
        (dict(criterion="threshold", threshold_scale=True), TypeError, "`threshold_scale`"),
        (dict(criterion="threshold", threshold_scale="0.5"), TypeError, "`threshold_scale`"),
    ],
)
def test_bad_criteria_and_scales_are_refused_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        criteria.prune(final=_one([1.0]), masks=_one([1]), rates=ONE, groups=GROUP, **kwargs)


@pytest.mark.parametrize("criterion", ["large_init", "magnitude_increase", "movement"])
def test_criteria_comparing_with_the_rewind_point_need_it(criterion):
    with pytest.raises(ValueError, match="needs `initial`"):
        criteria.prune(criterion, _one([1.0, 2.0]), _one([1, 1]), ONE, GROUP)
    with pytest.raises(ValueError, match="'l/kernel' has shape"):
        criteria.prune(criterion, _one([1.0, 2.0]), _one([1, 1]), ONE, GROUP, initial=_one([1.0]))
    with pytest.raises(ValueError, match="'l/kernel' holds NaN"):
        criteria.prune(criterion, _one([1.0, 2.0]), _one([1, 1]), ONE, GROUP, initial=_one([1.0, np.nan]))


def test_random_needs_a_generator():
    with pytest.raises(ValueError, match="'random' needs `rng`"):
        criteria.prune("random", _one([1.0, 2.0]), _one([1, 1]), ONE, GROUP)
