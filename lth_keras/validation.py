"""Argument checks shared by the public API: each raises with the bad value named."""

import numbers


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
