"""Side-by-side timing: each variant measured in the same process, interleaved, repeated."""

import statistics
import time
from typing import Callable, Dict, List

import lth_keras


def interleaved(variants: Dict[str, Callable[[], float]], repeats: int) -> Dict[str, List[float]]:
    """Runs each variant `repeats` times, alternating between them; returns name -> seconds.

    Each variant returns the seconds it measured (so it can leave out its own warm-up).
    Alternating spreads any slow spell of a shared machine over all variants alike.
    """
    results = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            results[name].append(run())
    return results


def timed(function: Callable[[], None]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def timed_fit(model, data, callbacks=(), **fit_kwargs) -> float:
    """Seconds from the start of the fit's first epoch to the end of its last one.

    What a run of many rounds in one `fit` pays per round, callbacks (and the lottery
    callback's round boundary) included, without `fit`'s own set-up and tear-down, which
    a real run pays once.
    """
    span = {}

    class First(lth_keras.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            span.setdefault("begin", time.perf_counter())

    class Last(lth_keras.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            span["end"] = time.perf_counter()

    model.fit(data, callbacks=[First(), *callbacks, Last()], verbose=0, **fit_kwargs)
    return span["end"] - span["begin"]


def summary(samples: List[float], scale: float = 1.0, unit: str = "") -> str:
    """'median (min–max)' of the samples times `scale`."""
    values = [scale * s for s in samples]
    return f"{statistics.median(values):.3f}{unit} ({min(values):.3f}–{max(values):.3f})"


def paired_median_ratio(numerator: List[float], denominator: List[float]) -> float:
    """Median of the ratios of paired repeats (each pair measured back to back)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def ratio(numerator: List[float], denominator: List[float]) -> str:
    """Median of the paired ratios, with their spread, and the ratio of the fastest of each.

    The fastest-of-each ratio is the least disturbed by a shared machine's slow spells.
    """
    pairs = [a / b for a, b in zip(numerator, denominator)]
    return (
        f"{paired_median_ratio(numerator, denominator):.3f} (pairs {min(pairs):.3f}–{max(pairs):.3f}, "
        f"fastest {min(numerator) / min(denominator):.3f})"
    )
