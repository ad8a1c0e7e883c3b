"""Argument checks shared by the public API: each raises with the bad value named.

Plain Python and NumPy: a Keras 3 user on JAX or PyTorch imports it without TensorFlow.
"""

import numbers
import sys

import numpy as np


def check_rate(value, name: str) -> float:
    """Returns `value` as a float if it is a number in [0, 1); raises otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}")
    return value


def check_positive_int(value, name: str, allow_none: bool = False):
    """Returns `value` if it is an int >= 1 (or None when allowed); raises otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1, got {value!r}")
    return int(value)


def check_non_negative_int(value, name: str) -> int:
    """Returns `value` if it is an int >= 0; raises otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {value!r}")
    return int(value)


def check_choice(value, choices, name: str):
    """Returns `value` if it is one of `choices`; raises otherwise."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")
    return value


def check_bool(value, name: str) -> bool:
    """Returns `value` if it is True or False; raises TypeError otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False, got {value!r}")
    return value


# TensorFlow and NumPy seeds are 64-bit.
_MAX_SEED = 2**63 - 1


def check_seed(value, name: str = "seed") -> int:
    """Returns `value` if it is an int in [0, 2**63); raises otherwise."""
    value = check_non_negative_int(value, name)
    if value > _MAX_SEED:
        raise ValueError(f"`{name}` must be < 2**63, got {value!r}")
    return value


def _count(array) -> int:
    """Number of examples in an array-like (its first dimension)."""
    shape = np.shape(array)
    if not shape:
        raise ValueError(f"expected an array of examples, got a scalar {array!r}")
    return int(shape[0])


def check_eval_data(data, name: str):
    """Returns `data` if it can be evaluated: None, an (x, y) pair of arrays or a dataset.

    Raises TypeError for a lone array or a tuple that is not a pair, and ValueError
    for a pair whose lengths differ, or data known to be empty.
    """
    if data is None:
        return None
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise TypeError(f"`{name}` must be an (x, y) pair or a dataset, got {len(data)} items")
        inputs, labels = (_count(part) for part in data)
        if inputs != labels:
            raise ValueError(f"`{name}` has {inputs} inputs but {labels} labels")
        if inputs == 0:
            raise ValueError(f"`{name}` is empty (0 examples): nothing to evaluate on")
        return data
    if isinstance(data, np.ndarray) or _is_tensorflow(data, "Tensor"):
        raise TypeError(f"`{name}` must be an (x, y) pair or a dataset, got one array of shape {data.shape}")
    if _is_tensorflow(data, "data.Dataset") and int(data.cardinality()) == 0:
        raise ValueError(f"`{name}` is an empty dataset: nothing to evaluate on")
    return data


def _is_tensorflow(value, kind: str) -> bool:
    """isinstance(value, tf.<kind>), without importing TensorFlow: if it is not imported yet,
    `value` is none of its types."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    for part in kind.split("."):
        tf = getattr(tf, part)
    return isinstance(value, tf)
