"""Putting lottery masks on a Keras 3 model (`prune_for_lottery`) and taking them off (`strip`)."""

from typing import Dict, Iterable, List, Mapping, Optional

import keras
from keras import ops

from lth_keras import notices
from lth_keras.keras3.graph import check_graph_model, check_keras3_model, flat_layers, output_layers
from lth_keras.keras3.layers import CONV_LAYERS, SUPPORTED, LotteryMask, pruned_weight_names
from lth_keras.keras3.optimizer_state import keeps_zero_gradient_weights_at_zero, schedule_classes
from lth_keras.rates import assign_rates, check_unique_layer_names, checked_exclude, checked_scope
from lth_keras.keras3.sync import sync_state
from lth_keras.masks import count_to_prune
from lth_keras.validation import check_non_negative_int


def unwrapped(layer):
    """The layer a LotteryMask wraps; any other layer itself."""
    return layer.layer if isinstance(layer, LotteryMask) else layer


def weight_key(layer, variable) -> str:
    """The key masks and snapshots use for a layer's variable, e.g. 'fc1/kernel' (a wrapper: its layer's)."""
    return f"{unwrapped(layer).name}/{variable.name}"


def weights_by_key(model) -> Dict[str, keras.Variable]:
    """Weight key -> variable for every weight of the model's layers (a LotteryMask's: its layer's).

    Raises ValueError naming the layer when two weights get one key: the weights of layers
    inside a custom layer are keyed by that layer's name, so two of them with one name
    ('kernel' of two inner Dense layers) cannot be told apart in masks and snapshots.
    """
    result = {}
    for layer in flat_layers(model):
        for variable in unwrapped(layer).weights:
            key = weight_key(layer, variable)
            other = result.setdefault(key, variable)
            if other is not variable:
                raise ValueError(
                    f"layer {unwrapped(layer).name!r} ({type(unwrapped(layer)).__name__}) holds two weights "
                    f"keyed {key!r} ({other.path} and {variable.path}): lth_keras keys a weight by its layer "
                    "and its name, so the layers inside a custom layer cannot be told apart. Put them in "
                    "the model itself (functional or Sequential), or give the weights distinct names"
                )
    return result


def lottery_layers(model, require: bool = True) -> List[LotteryMask]:
    """The model's LotteryMask layers in model order.

    Raises TypeError for anything but a Keras 3 model, and ValueError when `require` and
    the model was not prepared with `lth_keras.keras3.prune_for_lottery`.

    Example:
      >>> [layer.layer.name for layer in lottery_layers(pruned)]
      ['fc1', 'fc2', 'out']
    """
    check_keras3_model(model)
    layers = [layer for layer in flat_layers(model) if isinstance(layer, LotteryMask)]
    if require and not layers:
        raise ValueError(
            f"model {model.name!r} has no lottery-ticket layers: prepare it with "
            "lth_keras.keras3.prune_for_lottery(model, ...) before training"
        )
    return layers


def choose_masking(model, optimizer) -> None:
    """How `model`'s LotteryMask layers mask while `optimizer` trains it: on the stored weights'
    gradients only when the optimizer keeps pruned weights at exactly 0, else by multiplying
    them by the mask in every forward pass (see lth_keras/keras3/layers.py)."""
    only = keeps_zero_gradient_weights_at_zero(optimizer)
    for layer in lottery_layers(model):
        layer.mask_gradients_only(only)


def default_masking(model) -> None:
    """Puts every LotteryMask of `model` back to multiplying by its mask in the forward pass."""
    for layer in lottery_layers(model, require=False):
        layer.mask_gradients_only(False)


def mark_round(model, round_index: int) -> None:
    """Records in the model (saved with it) that round `round_index` of a lottery run has started."""
    mark = check_non_negative_int(round_index, "round_index") + 1
    sync_state(model)
    for layer in lottery_layers(model):
        layer.round_mark.assign(mark)


def marked_round(model) -> Optional[int]:
    """The round `mark_round` last recorded in this model; None if it never trained in one.

    Example:
      >>> mark_round(pruned, 2); marked_round(pruned)
      2
    """
    sync_state(model)
    latest = max(int(ops.convert_to_numpy(layer.round_mark)) for layer in lottery_layers(model))
    return latest - 1 if latest > 0 else None


def _rates(model, pruning_rate, output_pruning_rate, conv_pruning_rate, layer_pruning_rates, exclude):
    layers = flat_layers(model)
    prunable = [layer.name for layer in layers if pruned_weight_names(layer)]
    rates = assign_rates(
        {layer.name: type(layer).__name__ for layer in layers},
        prunable,
        output_layers(model, set(prunable)),
        {layer.name for layer in layers if isinstance(layer, CONV_LAYERS)},
        pruning_rate,
        output_pruning_rate,
        conv_pruning_rate,
        layer_pruning_rates,
        exclude,
        unsupported=SUPPORTED,
    )
    if not rates:
        listed = [f"{layer.name} ({type(layer).__name__})" for layer in layers]
        raise ValueError(
            f"model {model.name!r} has no layer to prune among {listed} once `exclude` is applied; "
            "prune_for_lottery needs at least one Dense, Conv1D/2D/3D or Embedding layer"
        )
    return rates


def _copy_layers(model, clone_function):
    """A clone of `model` (nested models cloned too) through `clone_function`, weights copied."""
    sync_state(model)
    originals = {}

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):  # an op of the graph (x[:, :4]): no weights
            return layer
        copy = clone_function(layer)
        originals[id(copy)] = layer
        return copy

    # A compiled model's clone is compiled from its config: a user's own schedule must be found.
    with keras.saving.custom_object_scope(schedule_classes(getattr(model, "optimizer", None))):
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for layer in flat_layers(copy):
        for target, value in zip(unwrapped(layer).weights, _values_of(originals[id(layer)])):
            # Copied out: under JAX an assign keeps the very array, and a train step that donates
            # one model's buffers would delete the other's.
            target.assign(ops.copy(value))
    return copy


def _values_of(layer):
    """The values `layer`'s copy gets: a LotteryMask's weights times their masks."""
    if not isinstance(layer, LotteryMask):
        return [v.value for v in layer.weights]
    masked = {id(weight): weight.value * mask.value for weight, mask in layer.masked_pairs()}
    return [masked.get(id(v), v.value) for v in layer.layer.weights]


def _fresh(layer):
    return layer.__class__.from_config(layer.get_config())


def prune_for_lottery(
    model,
    pruning_rate: float = 0.2,
    output_pruning_rate: Optional[float] = None,
    conv_pruning_rate: Optional[float] = None,
    layer_pruning_rates: Optional[Mapping[str, float]] = None,
    scope: str = "layerwise",
    exclude: Iterable[str] = (),
):
    """Returns a copy of a Keras 3 `model` with every prunable layer in a `LotteryMask`.

    Dense, Conv1D/2D/3D kernels and Embedding tables are pruned; biases and batch-norm
    never. The copy starts with the same weights and all-ones masks; `model` itself is
    left untouched. Each LotteryMask keeps its layer's rate and the scope, and
    `model.save` keeps them with the masks.

    Args:
      model: a built Sequential or functional Keras 3 model (any backend).
      pruning_rate: fraction of the surviving weights of a layer removed per round.
      output_pruning_rate: rate for the output layer (the prunable layer feeding a model
        output); default half of `pruning_rate`.
      conv_pruning_rate: rate for convolutions; default `pruning_rate`.
      layer_pruning_rates: layer name -> rate, overriding all of the above.
      scope: 'layerwise' (each layer its own threshold) or 'global' (one threshold
        across all layers that share a rate).
      exclude: names of layers never to prune or wrap.

    Example:
      >>> pruned = lth_keras.keras3.prune_for_lottery(model, pruning_rate=0.2)
      >>> pruned.compile(optimizer="adam", loss="mse")
    """
    scope = checked_scope(scope)
    check_graph_model(model)
    if lottery_layers(model, require=False):
        raise ValueError(f"model {model.name!r} already has lottery-ticket layers")
    check_unique_layer_names(model.name, flat_layers(model))
    weights_by_key(model)  # refused now rather than when a run takes its first snapshot
    rates = _rates(model, pruning_rate, output_pruning_rate, conv_pruning_rate, layer_pruning_rates, exclude)

    def wrap(layer):
        fresh = _fresh(layer)
        return LotteryMask(fresh, rates[layer.name], scope) if layer.name in rates else fresh

    pruned = _copy_layers(model, wrap)
    _warn_if_first_round_empties(pruned)
    _warn_about_dense_weights(pruned, checked_exclude(exclude))
    return pruned


def _warn_if_first_round_empties(model) -> None:
    """Warns about a layerwise weight whose rate removes all of it in the first round."""
    for layer in lottery_layers(model):
        for weight, _ in layer.masked_pairs():
            size = int(ops.size(weight))
            if layer.scope == "layerwise" and count_to_prune(size, layer.pruning_rate) == size:
                notices.warn_emptied(
                    weight_key(layer, weight), size, f"at rate {layer.pruning_rate}, the first round"
                )


def _warn_about_dense_weights(model, exclude) -> None:
    """Warns about weight matrices that stay dense although their layer was not excluded."""
    dense = []
    for layer in flat_layers(model):
        if isinstance(layer, LotteryMask) or layer.name in exclude:
            continue
        matrices = [w.name for w in layer.trainable_weights if len(w.shape) >= 2]
        if matrices:
            dense.append(f"{layer.name} ({type(layer).__name__}: {', '.join(matrices)})")
    if dense:
        notices.warn(
            f"these weights stay dense, in every round: {'; '.join(dense)}; {SUPPORTED}. Pass their "
            "layers in `exclude` to say that is meant"
        )


def strip(model):
    """Returns a plain Keras 3 copy of a lottery model: no LotteryMask, pruned weights exactly 0.

    `model` is left as it is; training the copy does not change it.

    Example:
      >>> plain = lth_keras.keras3.strip(pruned)
      >>> plain.save("ticket.keras")  # loads with no custom objects
    """
    lottery_layers(model)
    return _copy_layers(model, lambda layer: _fresh(unwrapped(layer)))


def custom_objects() -> Dict[str, type]:
    """The custom objects `keras.models.load_model` needs for a Keras 3 lottery model.

    Importing lth_keras.keras3 registers them too, so `load_model` also works without.
    """
    return {"LotteryMask": LotteryMask, keras.saving.get_registered_name(LotteryMask): LotteryMask}


def load_model(path: str, **kwargs):
    """Loads a Keras 3 lottery model saved with `model.save`, masks, rates and scope included."""
    return keras.models.load_model(path, custom_objects=custom_objects(), **kwargs)
