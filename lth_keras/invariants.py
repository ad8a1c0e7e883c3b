"""What must hold at every round boundary and within a round, as plain checks over NumPy arrays.

`LotteryTicketCallback` runs these after it prunes and rewinds, and checks the masks at
every epoch's end (unless created with `check_invariants=False`). Each check takes arrays keyed by weight key
("layer_name/weight_name") and raises `InvariantError` naming the weight and what broke;
each is one pass over the arrays.
"""

import hashlib
from typing import Dict, Iterable, Mapping, Sequence

import numpy as np

from lth_keras.masks import count_to_prune, non_binary_values


class InvariantError(AssertionError):
    """A round-boundary invariant of the lottery ticket is broken: a bug, or tampering."""


def digests(arrays: Mapping[str, np.ndarray]) -> Dict[str, str]:
    """Weight key -> blake2b hex digest of the array's dtype, shape and bytes."""
    result = {}
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest = hashlib.blake2b(f"{array.dtype.str}{array.shape}".encode(), digest_size=16)
        digest.update(array.reshape(-1).view(np.uint8))  # the bytes, without a copy
        result[key] = digest.hexdigest()
    return result


def check_digests(actual: Mapping[str, str], expected: Mapping[str, str], name: str) -> None:
    """Raises InvariantError naming the weights whose digests differ (or that only one side has)."""
    changed = sorted(key for key in set(actual) | set(expected) if actual.get(key) != expected.get(key))
    if changed:
        raise InvariantError(f"{name} changed since it was captured: weight(s) {changed} differ")


def check_unchanged(arrays: Mapping[str, np.ndarray], expected: Mapping[str, str], name: str) -> None:
    """Raises InvariantError naming the weights of `arrays` whose digests differ from `expected`."""
    check_digests(digests(arrays), expected, name)


def check_binary(masks: Mapping[str, np.ndarray]) -> None:
    """Raises InvariantError naming the first mask holding a value other than 0 and 1."""
    for key, mask in masks.items():
        bad = non_binary_values(mask)
        if bad.size:
            raise InvariantError(
                f"mask of {key!r} holds {bad.size} value(s) other than 0 and 1, e.g. {bad[0]!r}"
            )


def check_only_shrink(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> None:
    """Raises InvariantError naming a weight that `after` keeps although `before` pruned it."""
    for key, old in before.items():
        revived = np.count_nonzero((old == 0) & (after[key] != 0))
        if revived:
            raise InvariantError(f"{revived} pruned weight(s) of {key!r} came back: masks may only shrink")


def check_masks_unchanged(expected: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> None:
    """Raises InvariantError naming a mask of `masks` that differs from `expected` (0/1 or bool)."""
    for key, mask in masks.items():
        kept = np.asarray(expected[key]).astype(bool)
        differ = np.count_nonzero(mask != kept)
        if differ:
            revived = np.count_nonzero((mask != 0) & ~kept)
            raise InvariantError(
                f"mask of {key!r} changed at {differ} position(s) ({revived} pruned weight(s) came back)"
            )


def check_pruned_are_zero(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> None:
    """Raises InvariantError naming a weight that is not exactly 0 where its mask is 0."""
    for key, mask in masks.items():
        nonzero = np.count_nonzero(np.asarray(weights[key])[mask == 0])
        if nonzero:
            raise InvariantError(f"{nonzero} pruned weight(s) of {key!r} are not exactly 0")


def check_counts(
    before: Mapping[str, np.ndarray],
    after: Mapping[str, np.ndarray],
    rates: Mapping[str, float],
    groups: Iterable[Sequence[str]],
) -> None:
    """Raises InvariantError naming a group that lost other than `count_to_prune(surviving, rate)`."""
    for group in groups:
        surviving = sum(np.count_nonzero(before[key]) for key in group)
        removed = surviving - sum(np.count_nonzero(after[key]) for key in group)
        expected = count_to_prune(surviving, rates[group[0]])
        if removed != expected:
            raise InvariantError(
                f"pruning removed {removed} of the {surviving} surviving weights of {list(group)}; "
                f"at rate {rates[group[0]]} it must remove {expected}"
            )


def check_round_boundary(
    before: Mapping[str, np.ndarray],
    after: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray],
    rates: Mapping[str, float],
    groups: Iterable[Sequence[str]],
) -> None:
    """Every mask invariant of one round boundary.

    Args:
      before: the masks the finished round trained with.
      after: the masks after pruning.
      weights: the stored (rewound) values of the masked weights.
      rates: weight key -> per-round pruning rate.
      groups: lists of weight keys ranked together.
    """
    check_binary(after)
    check_only_shrink(before, after)
    check_pruned_are_zero(weights, after)
    check_counts(before, after, rates, groups)
