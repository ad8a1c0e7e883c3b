"""Putting tfmot's pruning wrappers on a model for a lottery ticket, and taking them off."""

from typing import Dict, Iterable, List, Mapping, Optional

from tensorflow_model_optimization.python.core.sparsity.keras import (
    prune,
    prune_registry,
    pruning_wrapper,
)

from lth_keras import notices
from lth_keras._keras import check_keras2_model, keras
from lth_keras.keras_internals import private_attribute
from lth_keras.lottery_wrapper import LotteryPruneLowMagnitude
from lth_keras.masks import count_to_prune
from lth_keras.rates import SCOPES, check_unique_layer_names, checked_exclude, checked_layer_rates
from lth_keras.schedule import LotteryTicketSchedule
from lth_keras.validation import check_choice, check_rate

PruneLowMagnitude = pruning_wrapper.PruneLowMagnitude
# Transposed convolutions subclass these; tf_keras does not export their common base.
_CONV_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)


def _is_prunable(layer) -> bool:
    """True for layers tfmot can wrap that have at least one weight to prune."""
    if isinstance(layer, (keras.Model, PruneLowMagnitude)):
        return False
    if hasattr(layer, "get_prunable_weights"):
        return bool(layer.get_prunable_weights())
    # tfmot's own table of prunable weight names; RNN and attention layers are not in it.
    weight_names = prune_registry.PruneRegistry._LAYERS_WEIGHTS_MAP.get(type(layer))
    if weight_names is not None:
        return bool(weight_names)
    return prune_registry.PruneRegistry.supports(layer)


def weight_name(variable) -> str:
    """A variable's own name without scope and suffix: 'dense/kernel:0' -> 'kernel'."""
    return variable.name.split("/")[-1].split(":")[0]


def weight_key(layer, variable) -> str:
    """The key masks and snapshots use for a layer's variable, e.g. 'fc1/kernel' (a wrapper: its layer's)."""
    return f"{unwrapped(layer).name}/{weight_name(variable)}"


def unwrapped(layer):
    """The layer a pruning wrapper wraps; any other layer itself."""
    return layer.layer if isinstance(layer, PruneLowMagnitude) else layer


def flat_layers(model) -> List:
    """All layers of `model`, nested models expanded, in model order."""
    layers = []
    for layer in model.layers:
        layers.extend(flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return layers


def _output_layers(model, prunable_names, settled) -> set:
    """Names of the prunable layers that feed a model output with no prunable layer between.

    Walks the model's graph back from its outputs, through nested models. A model with no
    graph (subclassed, or a Sequential never built) is taken to end in its last prunable
    layer; `settled` (excluded or given a rate) names layers that guess does not matter for.
    """
    if not model.outputs:
        return _last_prunable_layer(model, prunable_names, settled)
    found, seen = set(), set()
    exits = {}  # id of a nested model's input layer -> the nested model, to walk on from
    stack = _layers_that_made(model.outputs)
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if layer.name in prunable_names:
            found.add(layer.name)
        elif isinstance(layer, keras.Model) and layer.outputs:
            exits.update((id(entry), layer) for entry in _layers_that_made(layer.inputs))
            stack.extend(_layers_that_made(layer.outputs))
        else:
            stack.extend(_inbound_layers(exits.get(id(layer), layer)))
    return found


def _layers_that_made(tensors) -> List:
    """The layer behind each of a graph's input or output tensors, from its Keras history."""
    what = "the Keras history that links a model's input or output tensor to the layer that made it"
    return [private_attribute(tensor, "_keras_history", what).layer for tensor in tensors]


def _inbound_layers(layer) -> List:
    """The layers whose outputs `layer` was called on, in every call."""
    layers = []
    for node in layer.inbound_nodes:
        inbound = node.inbound_layers
        layers.extend(inbound if isinstance(inbound, (list, tuple)) else [inbound])
    return layers


def _last_prunable_layer(model, prunable_names, settled) -> set:
    """For a model with no graph to walk: its last prunable layer, said in a LotteryWarning."""
    ordered = [layer.name for layer in flat_layers(model) if layer.name in prunable_names]
    last = ordered[-1:]
    if last and last[0] not in settled:
        notices.warn(
            f"model {model.name!r} has no graph to find its output layer in (it is subclassed, or a "
            f"Sequential never built), so its last prunable layer, {last[0]!r}, is taken as the output "
            f"layer and pruned at output_pruning_rate; give it a rate of its own with "
            f"layer_pruning_rates={{{last[0]!r}: ...}} (or exclude it) to say that is meant"
        )
    return set(last)


def _check_names(names: Iterable[str], known, argument: str) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"`{argument}` names layers the model does not have: {unknown}")


def lottery_rates(
    model,
    pruning_rate: float,
    output_pruning_rate: Optional[float] = None,
    conv_pruning_rate: Optional[float] = None,
    layer_pruning_rates: Optional[Mapping[str, float]] = None,
    exclude: Iterable[str] = (),
) -> Dict[str, float]:
    """Layer name -> per-round pruning rate for every layer that will be pruned."""
    pruning_rate = check_rate(pruning_rate, "pruning_rate")
    if output_pruning_rate is None:
        output_pruning_rate = pruning_rate / 2
    output_pruning_rate = check_rate(output_pruning_rate, "output_pruning_rate")
    conv_pruning_rate = check_rate(
        pruning_rate if conv_pruning_rate is None else conv_pruning_rate, "conv_pruning_rate"
    )
    layer_pruning_rates = checked_layer_rates(layer_pruning_rates)
    exclude = checked_exclude(exclude)

    layers = flat_layers(model)
    names = [layer.name for layer in layers]
    _check_names(layer_pruning_rates, names, "layer_pruning_rates")
    _check_names(exclude, names, "exclude")
    prunable = {layer.name: layer for layer in layers if _is_prunable(layer)}
    for name in layer_pruning_rates:
        if name not in prunable:
            raise ValueError(f"`layer_pruning_rates` names layer {name!r}, which has no prunable weights")
    outputs = _output_layers(model, prunable, settled=exclude | set(layer_pruning_rates))

    rates = {}
    for name, layer in prunable.items():
        if name in exclude:
            continue
        if name in layer_pruning_rates:
            rates[name] = float(layer_pruning_rates[name])
        elif name in outputs:
            rates[name] = output_pruning_rate
        elif isinstance(layer, _CONV_LAYERS):
            rates[name] = conv_pruning_rate
        else:
            rates[name] = pruning_rate
    return rates


def _check_wrappable(model) -> None:
    check_keras2_model(model)
    if not (isinstance(model, keras.Sequential) or model._is_graph_network):
        raise TypeError(
            f"{type(model).__name__} is a subclassed model, which tfmot's wrappers cannot "
            "clone; build it as a Sequential or functional model."
        )
    if not model.built:
        raise ValueError(
            f"model {model.name!r} is not built: give it an Input or call "
            "model.build(input_shape) first, so its initial weights exist."
        )
    if lottery_layers(model, require=False) or any(
        isinstance(l, PruneLowMagnitude) for l in flat_layers(model)
    ):
        raise ValueError(f"model {model.name!r} already has pruning wrappers")
    check_unique_layer_names(model.name, flat_layers(model))


def _check_something_to_prune(model, rates) -> None:
    if not rates:
        layers = [f"{layer.name} ({type(layer).__name__})" for layer in flat_layers(model)]
        raise ValueError(
            f"model {model.name!r} has no layer to prune among {layers} once `exclude` is applied; "
            "prune_for_lottery needs at least one Dense, Conv or other layer tfmot can prune"
        )


def _copy_weights(source, target) -> None:
    """Copies weights layer by layer from `source` into its wrapped clone `target`."""
    for src, dst in zip(source.layers, target.layers):
        if isinstance(src, keras.Model):
            _copy_weights(src, dst)
        else:
            dst.set_weights(src.get_weights())  # a wrapper forwards to its inner layer


def prune_for_lottery(
    model,
    pruning_rate: float = 0.2,
    output_pruning_rate: Optional[float] = None,
    conv_pruning_rate: Optional[float] = None,
    layer_pruning_rates: Optional[Mapping[str, float]] = None,
    scope: str = "layerwise",
    exclude: Iterable[str] = (),
):
    """Returns a copy of `model` with every prunable layer in a lottery-ticket wrapper.

    Each wrapped layer gets a `LotteryPruneLowMagnitude`, our subclass of tfmot's
    `prune_low_magnitude` wrapper, with a `LotteryTicketSchedule` that holds its per-round
    rate. Biases and batch-norm are
    never pruned. The copy starts with the same weights (these become θ₀ when training
    starts) and all-ones masks; `model` itself is left untouched.

    Args:
      model: a built Sequential or functional tf_keras model.
      pruning_rate: fraction of the surviving weights of a layer removed per round.
      output_pruning_rate: rate for the output layer; default half of `pruning_rate`.
      conv_pruning_rate: rate for convolutions; default `pruning_rate`.
      layer_pruning_rates: layer name -> rate, overriding all of the above.
      scope: 'layerwise' (each layer its own threshold) or 'global' (one threshold
        across all layers that share a rate).
      exclude: names of layers never to prune or wrap.

    Example:
      >>> model = lth_keras.prune_for_lottery(model, pruning_rate=0.2)
    """
    check_choice(scope, SCOPES, "scope")
    _check_wrappable(model)
    rates = lottery_rates(
        model, pruning_rate, output_pruning_rate, conv_pruning_rate, layer_pruning_rates, exclude
    )
    _check_something_to_prune(model, rates)

    def wrap(layer):
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, clone_function=wrap)
        fresh = layer.__class__.from_config(layer.get_config())
        if layer.name not in rates:
            return fresh
        return LotteryPruneLowMagnitude(
            fresh, pruning_schedule=LotteryTicketSchedule(rates[layer.name], scope)
        )

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    if not wrapped.built:
        wrapped.build(model.input_shape)
    _copy_weights(model, wrapped)
    enable_training(wrapped)
    _warn_about_dense_weights(wrapped, checked_exclude(exclude))
    _warn_if_first_round_empties(wrapped)
    return wrapped


def _warn_about_dense_weights(model, exclude) -> None:
    """Warns about weight matrices that will not be pruned although their layer was not excluded.

    tfmot has no prunable weights for some layers (DepthwiseConv2D, Conv1DTranspose,
    attention) and prunes only some weights of others (SeparableConv2D: the pointwise
    kernel); biases and other vectors are never pruned and are not mentioned.
    """
    dense = []
    for layer in flat_layers(model):
        inner = unwrapped(layer)
        if inner.name in exclude:
            continue
        pruned = {id(weight) for weight, _, _ in getattr(layer, "pruning_vars", [])}
        left = [w for w in inner.trainable_weights if len(w.shape) >= 2 and id(w) not in pruned]
        if left:
            names = ", ".join(weight_name(w) for w in left)
            why = "only its other weights are pruned" if pruned else "tfmot has no prunable weights for it"
            dense.append(f"{inner.name} ({type(inner).__name__}: {names}; {why})")
    if dense:
        notices.warn(
            f"these weights stay dense, in every round: {'; '.join(dense)}. Pass their layers in "
            "`exclude` to say that is meant"
        )


def _warn_if_first_round_empties(model) -> None:
    """Warns about a layerwise weight whose rate removes all of it in the first round."""
    for layer in lottery_layers(model):
        schedule = layer.pruning_schedule
        for weight, _, _ in layer.pruning_vars:
            size = weight.shape.num_elements()
            if schedule.scope == "layerwise" and count_to_prune(size, schedule.pruning_rate) == size:
                key = weight_key(layer, weight)
                when = f"at rate {schedule.pruning_rate}, the first round"
                notices.warn_emptied(key, size, when)


def lottery_layers(model, require: bool = True) -> List[PruneLowMagnitude]:
    """The model's lottery-ticket wrappers in model order.

    Raises ValueError when `require` and the model was not prepared with
    `prune_for_lottery`, or when a tfmot wrapper carries some other schedule.
    """
    check_keras2_model(model)
    layers = [l for l in flat_layers(model) if isinstance(l, PruneLowMagnitude)]
    for layer in layers:
        if not isinstance(layer.pruning_schedule, LotteryTicketSchedule):
            raise ValueError(
                f"layer {layer.name!r} is pruned with tfmot's {type(layer.pruning_schedule).__name__}, "
                "not a LotteryTicketSchedule: prepare the model with lth_keras.prune_for_lottery"
            )
    if require and not layers:
        raise ValueError(
            f"model {model.name!r} has no lottery-ticket layers: prepare it with "
            "lth_keras.prune_for_lottery(model, ...) before training"
        )
    return layers


def enable_training(model) -> None:
    """Lets the wrapped model train without tfmot's UpdatePruningStep callback.

    tfmot's wrapper refuses to train while its step counter is at its initial -1;
    the counter means nothing to a LotteryTicketSchedule, so it only has to be >= 0.
    """
    for layer in lottery_layers(model):
        if int(layer.pruning_step.numpy()) < 0:
            layer.pruning_step.assign(0)


def mark_round(model, round_index: int) -> None:
    """Records in the model that round `round_index` of a lottery run has started.

    The mark is the wrappers' `pruning_step` (round + 1), a variable tfmot saves with the
    model and our wrapper does not count steps with, so a model saved mid-run says so.
    """
    for layer in lottery_layers(model):
        layer.pruning_step.assign(round_index + 1)


def marked_round(model) -> Optional[int]:
    """The round a lottery callback last started on this model; None if it never trained one."""
    latest = max(int(layer.pruning_step.numpy()) for layer in lottery_layers(model))
    return latest - 1 if latest > 0 else None


def apply_masks_to_weights(model, only_masked_in_call: bool = False) -> None:
    """Sets every pruned weight's stored value to exactly 0 (weight <- weight * mask).

    `only_masked_in_call`: only the layers that mask in `call` (embeddings), whose pruned
    weights the optimizer's update leaves non-zero until the next forward pass masks them.
    """
    for layer in lottery_layers(model):
        if only_masked_in_call and not getattr(layer, "masks_in_call", True):
            continue
        for weight, mask, _ in layer.pruning_vars:
            weight.assign(weight * mask)


def strip(model):
    """Returns a plain tf_keras model without wrappers; pruned weights are exactly 0.0.

    The result is a separate copy: training it does not change `model`.
    """
    apply_masks_to_weights(model)
    stripped = prune.strip_pruning(model)  # shares layers with `model`
    copy = keras.models.clone_model(stripped)
    copy.set_weights(stripped.get_weights())
    return copy


def custom_objects() -> Dict[str, type]:
    """The custom objects `keras.models.load_model` needs for a lottery model."""
    return {
        "PruneLowMagnitude": PruneLowMagnitude,
        "LotteryPruneLowMagnitude": LotteryPruneLowMagnitude,
        keras.utils.get_registered_name(LotteryPruneLowMagnitude): LotteryPruneLowMagnitude,
        "LotteryTicketSchedule": LotteryTicketSchedule,
        keras.utils.get_registered_name(LotteryTicketSchedule): LotteryTicketSchedule,
    }


def load_model(path: str, **kwargs):
    """Loads a lottery model saved with `model.save`, masks and sparsity included."""
    with keras.utils.custom_object_scope(custom_objects()):
        model = keras.models.load_model(path, **kwargs)
    return model
