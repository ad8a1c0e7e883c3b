"""Mask criteria and sign measures, as plain functions over NumPy arrays (no Keras).

Which surviving weights a round keeps (Zhou et al. 2019, "Deconstructing lottery tickets";
Han et al. 2015 for `threshold`), with w_f a weight at the round's end and w_i the same
weight at the rewind point (θ₀, or θ_k with late rewinding):

    large_final          keep the largest |w_f| (the paper's magnitude pruning, the default)
    large_init           keep the largest |w_i|
    magnitude_increase   keep the largest |w_f| - |w_i|
    movement             keep the largest |w_f - w_i|
    random               keep a uniformly random subset
    threshold            prune every survivor with |w_f| < s·σ, σ the standard deviation of
                         its group's surviving w_f (a layer's, or a global group's)

The first five remove `count_to_prune(surviving, rate)` of each group's survivors, exactly,
as `magnitude_prune` does. `threshold` removes whatever falls under s·σ, however many that
is (a group of rate 0 is left alone): its counts are recorded, not scheduled.
"""

from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np

from lth_keras.masks import Masks, check_groups, layer_of, prune_lowest

CRITERIA = ("large_final", "large_init", "magnitude_increase", "movement", "random", "threshold")
DEFAULT = "large_final"
THRESHOLD = "threshold"
DEFAULT_THRESHOLD_SCALE = 0.5
_NEEDS_INITIAL = ("large_init", "magnitude_increase", "movement")

_SCORES = {
    "large_final": lambda final, initial: np.abs(final),
    "large_init": lambda final, initial: np.abs(initial),
    "magnitude_increase": lambda final, initial: np.abs(final) - np.abs(initial),
    "movement": lambda final, initial: np.abs(final - initial),
}


def check_criterion(criterion, threshold_scale) -> tuple:
    """(criterion, threshold_scale as a float) if both are valid; raises naming the bad one."""
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {list(CRITERIA)}, got {criterion!r}")
    if isinstance(threshold_scale, bool) or not isinstance(threshold_scale, (int, float)):
        raise TypeError(f"`threshold_scale` must be a number > 0, got {threshold_scale!r}")
    if not (np.isfinite(threshold_scale) and threshold_scale > 0):
        raise ValueError(f"`threshold_scale` must be a finite number > 0, got {threshold_scale!r}")
    return criterion, float(threshold_scale)


def counts_scheduled(criterion: str) -> bool:
    """Whether a round of `criterion` removes the scheduled count (all but `threshold`)."""
    return criterion != THRESHOLD


def prune(
    criterion: str,
    final: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    rates: Mapping[str, float],
    groups: Iterable[Sequence[str]],
    initial: Optional[Mapping[str, np.ndarray]] = None,
    rng: Optional[np.random.Generator] = None,
    threshold_scale: float = DEFAULT_THRESHOLD_SCALE,
) -> Masks:
    """The masks after one round's pruning by `criterion`; already pruned weights stay pruned.

    Args:
      criterion: one of CRITERIA.
      final: weight key -> the weight at the round's end (w_f), for each pruned weight.
      masks, rates, groups: as `magnitude_prune` takes them.
      initial: weight key -> the weight at the rewind point (w_i); needed by large_init,
        magnitude_increase and movement.
      rng: draws `random`'s scores (seed it for a reproducible mask).
      threshold_scale: s of `threshold`.
    """
    criterion, threshold_scale = check_criterion(criterion, threshold_scale)
    groups = [list(group) for group in groups]
    if criterion == THRESHOLD:
        return _threshold_prune(final, masks, rates, groups, threshold_scale)
    if criterion == "random":
        if rng is None:
            raise ValueError("criterion 'random' needs `rng`, a seeded numpy Generator")
        return prune_lowest(final, masks, rates, groups, lambda key: rng.random(np.shape(final[key])))
    if criterion in _NEEDS_INITIAL:
        _check_initial(criterion, final, initial, groups)
    score = _SCORES[criterion]
    return prune_lowest(final, masks, rates, groups, lambda key: score(final[key], _initial(initial, key)))


def _initial(initial, key):
    return None if initial is None else np.asarray(initial[key])


def _check_initial(criterion, final, initial, groups) -> None:
    """Raises naming the weight when `initial` cannot be compared with `final`."""
    if initial is None:
        raise ValueError(f"criterion {criterion!r} needs `initial`, the weights at the rewind point")
    for key in (key for group in groups for key in group):
        if key not in initial:
            raise ValueError(f"weight {key!r} has no entry in `initial` (the weights at the rewind point)")
        if np.shape(initial[key]) != np.shape(final[key]):
            raise ValueError(
                f"weight {key!r} has shape {np.shape(initial[key])} in `initial`, {np.shape(final[key])} "
                "at the round's end"
            )
        if not np.all(np.isfinite(initial[key])):
            raise ValueError(f"weight {key!r} holds NaN or inf in `initial`: cannot rank it")


def _threshold_prune(final, masks, rates, groups, scale) -> Masks:
    """Han et al.: each group (of rate > 0) loses its survivors with |w| < scale · std(survivors)."""
    new_masks = dict(Masks(masks))
    check_groups(groups, final, new_masks, rates)
    for group in groups:
        if rates[group[0]] == 0:
            continue
        surviving = np.concatenate([np.asarray(final[key])[new_masks[key] > 0] for key in group])
        if not surviving.size:
            continue
        cut = scale * float(np.std(surviving, dtype=np.float64))
        for key in group:
            below = np.abs(np.asarray(final[key], dtype=np.float64)) < cut
            new_masks[key] = np.where(below, 0.0, new_masks[key]).astype(np.float32)
    return Masks(new_masks)


def pruned_per_layer(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> Dict[str, int]:
    """Layer name -> how many of its weights `after` prunes that `before` kept."""
    counts: Dict[str, int] = {}
    for key, mask in before.items():
        removed = int(np.count_nonzero((np.asarray(mask) != 0) & (np.asarray(after[key]) == 0)))
        counts[layer_of(key)] = counts.get(layer_of(key), 0) + removed
    return counts


def sign_stability(
    final: Mapping[str, np.ndarray], initial: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]
) -> Optional[float]:
    """The fraction of surviving weights (mask 1) whose sign in `final` is their sign in `initial`
    (np.sign: a weight of 0 has sign 0); None when nothing survives."""
    same = kept = 0
    for key, mask in masks.items():
        alive = np.asarray(mask) != 0
        same += int(np.count_nonzero(alive & (np.sign(final[key]) == np.sign(initial[key]))))
        kept += int(np.count_nonzero(alive))
    return same / kept if kept else None
