"""LotteryWarning: what the library says when a run works but may not be what was meant.

A warning, not an error, because each of these can be intended (a layer left dense, a
learning rate lowered between fits). To make them errors while experimenting:

  >>> import warnings
  >>> warnings.simplefilter("error", lth_keras.LotteryWarning)
"""

import importlib.util
import os
import sys
import warnings


class LotteryWarning(UserWarning):
    """A lottery run that works, but may not train the ticket the user meant."""


def _package_dirs(*names: str) -> tuple:
    spec_dirs = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            spec_dirs.extend(os.path.join(d, "") for d in spec.submodule_search_locations)
    return tuple(spec_dirs)


# A warning points at the first caller outside these: the user's line that called fit or
# prune_for_lottery, not the Keras or lth_keras line that happened to notice.
_LIBRARY_DIRS = _package_dirs("lth_keras", "tf_keras", "tensorflow", "tensorflow_model_optimization")


def warn(message: str) -> None:
    """Issues `message` as a LotteryWarning, attributed to the first caller outside the libraries."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, LotteryWarning, stacklevel=level)


def warn_emptied(key: str, count: int, when: str) -> None:
    """Warns that pruning removes all `count` remaining weights of weight `key`."""
    warn(
        f"{when} prunes all {count} remaining weights of {key!r}: its layer then passes nothing of its "
        "input on. Lower that layer's rate (layer_pruning_rates) or exclude it"
    )
