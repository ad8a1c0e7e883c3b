"""The mask criteria's checks over round ends, in NumPy only: tests/test_deconstruct.py runs
them on tf_keras, tests/keras3/test_keras3_deconstruct.py on each Keras 3 backend.

`ends` is one (masks, effective weights) pair per round as it ended, by weight key;
`rates` the per-round pruning rate of each weight key.
"""

import numpy as np

from lth_keras.masks import count_to_prune

# Each criterion's score of a surviving weight from its final and its rewind value.
SCORES = {
    "large_final": lambda final, initial: np.abs(final),
    "large_init": lambda final, initial: np.abs(initial),
    "magnitude_increase": lambda final, initial: np.abs(final) - np.abs(initial),
    "movement": lambda final, initial: np.abs(final - initial),
}


def check_survivors_score_highest(ends, rewind_weights, criterion: str, rates) -> None:
    """Each round pruned its rate's count of the survivors, all scoring below those it kept."""
    for (masks, final), (next_masks, _) in zip(ends, ends[1:]):
        for key, rate in rates.items():
            score = SCORES[criterion](final[key], rewind_weights[key])
            pruned_now = (masks[key] == 1) & (next_masks[key] == 0)
            kept = next_masks[key] == 1
            assert pruned_now.sum() == count_to_prune(int(masks[key].sum()), rate), key
            assert score[kept].min() >= score[pruned_now].max(), key


def check_threshold(ends, rounds, scale: float, rates) -> None:
    """Each round kept exactly the survivors with |w| >= scale * their std, and its record
    (`rounds`, the ticket's) counts what it pruned by layer."""
    for index, ((masks, final), (next_masks, _)) in enumerate(zip(ends, ends[1:])):
        pruned = {}
        for key in rates:
            survivors = final[key][masks[key] == 1].astype(np.float64)
            expected = (masks[key] == 1) & (np.abs(final[key]) >= scale * survivors.std())
            np.testing.assert_array_equal(next_masks[key], expected.astype(np.float32))
            pruned[key.split("/")[0]] = int(masks[key].sum() - next_masks[key].sum())
        assert rounds[index + 1]["pruned"] == pruned


def sign_stability(masks, final, rewind_weights, rates) -> float:
    """The fraction of the survivors whose final sign is their rewind sign, counted directly."""
    same = kept = 0
    for key in rates:
        alive = masks[key] == 1
        same += np.count_nonzero(alive & (np.sign(final[key]) == np.sign(rewind_weights[key])))
        kept += np.count_nonzero(alive)
    return same / kept
