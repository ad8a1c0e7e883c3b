"""Mask math as plain functions over NumPy arrays: no Keras, no training.

A mask is a 0/1 float32 array shaped like the weight it masks; a set of masks is a
`Masks` mapping from weight key ("layer_name/weight_name") to mask.
"""

import collections
import os
from typing import Callable, Dict, Iterable, Mapping, Sequence

import numpy as np

from lth_keras import storage
from lth_keras.validation import check_rate

MASKS_FILE = "masks.npz"


def layer_of(key: str) -> str:
    """The layer name of a weight key "layer_name/weight_name"."""
    return key.rsplit("/", 1)[0]


def _listed(keys, limit: int = 6) -> str:
    keys = sorted(keys)
    return str(keys[:limit])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > limit else "]")


def check_same_keys(stored: Iterable[str], model: Iterable[str], source: str) -> None:
    """Raises ValueError when stored weight keys ('layer/weight') are not the model's, listing
    both sides; keys are layer names, so a model whose layers Keras named (dense_2, ...) in
    another order or process does not match: the message says to name them."""
    stored, model = set(stored), set(model)
    if stored == model:
        return
    missing, extra = model - stored, stored - model
    parts = []
    if missing:
        parts.append(f"no entry for the model's {_listed(missing)}")
    if extra:
        parts.append(f"entries for {_listed(extra)}, which the model lacks")
    raise ValueError(
        f"{source} do not fit this model: {'; '.join(parts)}. The model's weights: {_listed(model)}. "
        "Keys are 'layer name/weight name': build the model with the same layer names (give "
        "each layer a name=..., since Keras's automatic names like dense_2 depend on what was "
        "built before)"
    )


def count_to_prune(surviving: int, rate: float) -> int:
    """How many of `surviving` weights a round at `rate` removes (round half up)."""
    return int(np.floor(rate * surviving + 0.5))


def non_binary_values(mask) -> np.ndarray:
    """The values of `mask` other than 0 and 1 (empty for a valid mask)."""
    array = np.asarray(mask)
    return array[(array != 0) & (array != 1)]


class Masks(storage.NamedArrays):
    """An immutable mapping of weight key -> 0/1 float32 mask, with sparsity helpers.

    Example:
      >>> m = Masks({"dense/kernel": np.array([[1., 0.], [1., 1.]])})
      >>> m.weights_remaining
      0.75
    """

    def _convert(self, key: str, value) -> np.ndarray:
        if not isinstance(key, str):
            raise TypeError(f"mask keys must be weight keys 'layer/weight' (strings), got {key!r}")
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"mask {key!r} must hold numbers 0 and 1, got dtype {array.dtype}")
        bad = non_binary_values(array)
        if bad.size:
            raise ValueError(f"mask {key!r} holds values other than 0 and 1, e.g. {bad.flat[0]!r}")
        return array.astype(np.float32)

    @property
    def size(self) -> int:
        """Number of maskable weights in all."""
        return sum(m.size for m in self._arrays.values())

    @property
    def count_remaining(self) -> int:
        """Number of weights the masks keep."""
        return int(sum(np.count_nonzero(m) for m in self._arrays.values()))

    @property
    def weights_remaining(self) -> float:
        """Fraction of maskable weights kept, over all masks."""
        return self.count_remaining / self.size if self.size else 1.0

    def layer_sparsity(self) -> Dict[str, float]:
        """Layer name -> fraction of that layer's maskable weights pruned."""
        pruned = collections.defaultdict(int)
        total = collections.defaultdict(int)
        for key, mask in self._arrays.items():
            pruned[layer_of(key)] += mask.size - np.count_nonzero(mask)
            total[layer_of(key)] += mask.size
        return {layer: pruned[layer] / total[layer] for layer in total}

    def check_matches(self, shapes: Mapping[str, Sequence[int]], source: str = "masks") -> None:
        """Raises ValueError naming the layer if keys or shapes differ from `shapes`."""
        check_same_keys(self._arrays, shapes, source)
        for key, shape in shapes.items():
            if tuple(self._arrays[key].shape) != tuple(shape):
                raise ValueError(
                    f"{source}: mask for layer weight {key!r} has shape "
                    f"{tuple(self._arrays[key].shape)}, the model's weight has {tuple(shape)}"
                )

    def save(self, directory: str) -> str:
        """Writes the masks to `directory`/masks.npz atomically; returns the path."""
        return self.save_file(os.path.join(directory, MASKS_FILE))

    @classmethod
    def load(cls, directory: str) -> "Masks":
        """Reads masks written by `save`."""
        return cls.load_file(os.path.join(directory, MASKS_FILE))


def check_groups(groups, weights, masks, rates) -> None:
    """Raises naming the weight key when a group cannot be ranked as asked."""
    seen = set()
    for group in groups:
        if not group:
            raise ValueError("`groups` holds an empty group: each group needs at least one weight key")
        for key in group:
            if key in seen:
                raise ValueError(f"weight {key!r} is in more than one group (or twice in one)")
            seen.add(key)
            for mapping, argument in ((weights, "weights"), (masks, "masks"), (rates, "rates")):
                if key not in mapping:
                    raise ValueError(f"weight {key!r} is in `groups` but has no entry in `{argument}`")
            check_rate(rates[key], f"rates[{key!r}]")
            if np.shape(weights[key]) != masks[key].shape:
                raise ValueError(
                    f"weight {key!r} has shape {np.shape(weights[key])} but its mask has {masks[key].shape}"
                )
            if not np.all(np.isfinite(weights[key])):
                raise ValueError(f"weight {key!r} holds NaN or inf: cannot rank it by magnitude")
        group_rates = sorted({rates[key] for key in group})
        if len(group_rates) != 1:
            raise ValueError(f"weights {group} are ranked together but have rates {group_rates}")


def magnitude_prune(
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    rates: Mapping[str, float],
    groups: Iterable[Sequence[str]],
) -> Masks:
    """Removes the smallest-magnitude surviving weights; returns the new masks.

    Each group of keys is ranked together under one threshold (a single key is
    layerwise pruning; several keys are global pruning) and loses
    `count_to_prune(surviving, rate)` of its surviving weights, exactly, whatever the
    ties. Keys in no group keep their mask. Already pruned weights stay pruned.
    """
    return prune_lowest(weights, masks, rates, groups, lambda key: np.abs(weights[key]))


def prune_lowest(
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    rates: Mapping[str, float],
    groups: Iterable[Sequence[str]],
    score: Callable[[str], np.ndarray],
) -> Masks:
    """Removes each group's lowest-scoring surviving weights, `count_to_prune(surviving, rate)`
    of them exactly; returns the new masks (see `magnitude_prune`, which scores by |weight|).

    `score(key)` is an array shaped like `weights[key]`: the higher, the more a weight is kept
    (lth_keras.criteria scores by the other mask criteria).
    """
    new_masks = dict(Masks(masks))  # checked float32 copies; entries are replaced, never modified
    groups = [list(group) for group in groups]
    check_groups(groups, weights, new_masks, rates)
    for group in groups:
        flat_masks = [new_masks[key].ravel() for key in group]
        # Pruned weights score -inf so they sort first and are never counted twice.
        scores = np.concatenate(
            [np.where(m > 0, np.asarray(score(key)).ravel(), -np.inf) for key, m in zip(group, flat_masks)]
        )
        already_pruned = int(np.sum(np.isneginf(scores)))
        surviving = scores.size - already_pruned
        prune_total = already_pruned + count_to_prune(surviving, rates[group[0]])
        keep = np.ones(scores.size, dtype=np.float32)
        if prune_total:
            lowest = np.argpartition(scores, prune_total - 1)[:prune_total]
            keep[lowest] = 0.0
        offset = 0
        for key, flat in zip(group, flat_masks):
            new_masks[key] = keep[offset : offset + flat.size].reshape(new_masks[key].shape)
            offset += flat.size
    return Masks(new_masks)


def random_masks_like(masks: Mapping[str, np.ndarray], seed: int) -> Masks:
    """Random masks with exactly as many kept weights in each mask as `masks` has."""
    rng = np.random.default_rng(seed)
    result = {}
    for key in sorted(masks):
        mask = np.asarray(masks[key])
        flat = np.zeros(mask.size, dtype=np.float32)
        flat[rng.permutation(mask.size)[: np.count_nonzero(mask)]] = 1.0
        result[key] = flat.reshape(mask.shape)
    return Masks({key: result[key] for key in masks})
