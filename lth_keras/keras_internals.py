"""The private attributes of tf_keras and TensorFlow that lth_keras relies on, read loudly.

A few things lth_keras needs have no public API: the variables of a dynamic loss scale,
the layer that made a model output, the resource variables behind a mixed-precision or
distributed weight. If a release renamed one, a read with a default would quietly do
something else (reset no loss scale, prune the wrong layer at the output rate, leave
pruned weights unconstrained), so each is read through `private_attribute`, which stops
the run with a `KerasInternalsChanged` naming what is missing and the installed versions.
"""

import tensorflow as tf

from lth_keras._keras import keras

# The tf_keras (and TensorFlow) release lth_keras's use of private attributes was tested with.
TESTED_VERSION = "2.21"


class KerasInternalsChanged(RuntimeError):
    """A private attribute of tf_keras or TensorFlow that lth_keras relies on is not there."""


def internals_changed(what: str, path: str) -> KerasInternalsChanged:
    """The error for `what` lth_keras relies on, at `path` (e.g. 'KerasTensor._keras_history')."""
    return KerasInternalsChanged(
        f"lth_keras relies on {what} ({path}), which tf_keras {keras.__version__} (TensorFlow "
        f"{tf.__version__}) does not have; lth_keras was tested with {TESTED_VERSION}: pin "
        f"tf_keras=={TESTED_VERSION}.* and tensorflow=={TESTED_VERSION}.*, or report it"
    )


def private_attribute(obj, path: str, what: str):
    """`obj.<path>`, `path` being one or more dotted private attribute names.

    Raises KerasInternalsChanged naming `what` and the path up to the first missing name.
    """
    value, walked = obj, type(obj).__name__
    for name in path.split("."):
        walked += f".{name}"
        try:
            value = getattr(value, name)
        except AttributeError:
            raise internals_changed(what, walked) from None
    return value
