"""Which layers a lottery run prunes, and at what rate: pure rules over layer names.

Shared by the tf_keras side (lth_keras.wrapping, lth_keras.schedule) and lth_keras.keras3.
Nothing here knows a framework: the caller says which layers exist, which can be pruned,
which are convolutions and which feed a model output, and gets the per-round rate of each
layer that will be pruned. The checks raise the same errors, word for word, as
`lth_keras.prune_for_lottery` on tf_keras.
"""

from typing import AbstractSet, Dict, Iterable, Mapping, Optional, Sequence

from lth_keras.validation import check_choice, check_rate

SCOPES = ("layerwise", "global")


def checked_scope(scope: str) -> str:
    """`scope` if it is 'layerwise' or 'global'; raises ValueError naming it otherwise."""
    return check_choice(scope, SCOPES, "scope")


def checked_exclude(exclude) -> set:
    """`exclude` (one layer name, or an iterable of names) as a set of names.

    Example:
      >>> checked_exclude("out")
      {'out'}
    """
    names = [exclude] if isinstance(exclude, str) else exclude
    if not isinstance(names, Iterable):
        raise TypeError(f"`exclude` must be layer names, got {exclude!r}")
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise TypeError(f"`exclude` must hold layer names (strings), got {bad[0]!r}")
    return set(names)


def checked_layer_rates(layer_pruning_rates) -> Dict[str, float]:
    """`layer_pruning_rates` (None, or layer name -> rate) as a dict of checked rates."""
    if layer_pruning_rates is None:
        return {}
    if not isinstance(layer_pruning_rates, Mapping):
        raise TypeError(
            f"`layer_pruning_rates` must be a mapping of layer name -> rate, got {layer_pruning_rates!r}"
        )
    return {
        name: check_rate(value, f"layer_pruning_rates[{name!r}]")
        for name, value in layer_pruning_rates.items()
    }


def _unknown(names: Iterable[str], known: AbstractSet[str], argument: str) -> None:
    missing = sorted(set(names) - known)
    if missing:
        raise ValueError(f"`{argument}` names layers the model does not have: {missing}")


def assign_rates(
    layer_types: Mapping[str, str],
    prunable: Sequence[str],
    output_layers: AbstractSet[str],
    conv_layers: AbstractSet[str],
    pruning_rate: float,
    output_pruning_rate: Optional[float] = None,
    conv_pruning_rate: Optional[float] = None,
    layer_pruning_rates: Optional[Mapping[str, float]] = None,
    exclude: Iterable[str] = (),
    unsupported: str = "",
) -> Dict[str, float]:
    """Layer name -> per-round pruning rate, for every prunable layer not excluded.

    Args:
      layer_types: name -> type name (e.g. 'Dense') of every layer of the model.
      prunable: the names of the layers that have weights to prune, in model order.
      output_layers: the prunable layers that feed a model output (half rate by default).
      conv_layers: the prunable layers that are convolutions (`conv_pruning_rate`).
      pruning_rate, output_pruning_rate, conv_pruning_rate, layer_pruning_rates, exclude:
        as `prune_for_lottery` takes them.
      unsupported: says which layers can be pruned, in the error for a rate given to a layer
        that cannot.

    Example:
      >>> assign_rates({"fc": "Dense", "out": "Dense"}, ["fc", "out"], {"out"}, set(), 0.2)
      {'fc': 0.2, 'out': 0.1}
    """
    pruning_rate = check_rate(pruning_rate, "pruning_rate")
    output_rate = check_rate(
        pruning_rate / 2 if output_pruning_rate is None else output_pruning_rate, "output_pruning_rate"
    )
    conv_rate = check_rate(
        pruning_rate if conv_pruning_rate is None else conv_pruning_rate, "conv_pruning_rate"
    )
    given = checked_layer_rates(layer_pruning_rates)
    excluded = checked_exclude(exclude)
    _unknown(given, set(layer_types), "layer_pruning_rates")
    _unknown(excluded, set(layer_types), "exclude")
    for name in given:
        if name not in prunable:
            raise ValueError(
                f"`layer_pruning_rates` names layer {name!r}, which has no prunable weights "
                f"({layer_types[name]}{'; ' + unsupported if unsupported else ''})"
            )

    def rate(name: str) -> float:
        if name in given:
            return given[name]
        if name in output_layers:
            return output_rate
        return conv_rate if name in conv_layers else pruning_rate

    return {name: rate(name) for name in prunable if name not in excluded}


def check_unique_layer_names(model_name: str, layers) -> None:
    """Raises ValueError naming a layer name that two different `layers` of the model share.

    Masks and snapshots are keyed by layer name, so two layers of one name (e.g. in two
    nested models) would overwrite each other's entries.
    """
    seen = {}
    for layer in layers:
        if seen.setdefault(layer.name, layer) is not layer:
            raise ValueError(
                f"model {model_name!r} has two different layers named {layer.name!r} (nested models "
                "included); masks and weights are keyed by layer name: give the layers unique names"
            )
