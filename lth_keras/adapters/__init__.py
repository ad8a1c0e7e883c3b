"""What the round engine asks of a model, one adapter per framework.

The round logic (`lth_keras.callback`) is written once. Reading and writing a model's masks,
weights and optimizer state, evaluating it and finding the other callbacks of its `fit` is
an adapter's job: `lth_keras.adapters.tf_keras` for tf_keras models on tfmot's wrappers,
`lth_keras.adapters.keras3` for Keras 3 models. `for_model(model)` picks the adapter of the
model's framework and imports it, with its framework, only then: a Keras 3 user on JAX never
imports TensorFlow.

An adapter is a module with these functions (`model` one the adapter's framework built):
  check_prepared(model): raises ValueError unless `prune_for_lottery` prepared it.
  iterations(optimizer) -> int; set_iterations(optimizer, n).
  steps_per_execution(model) -> int.
  take_snapshot(model) -> WeightSnapshot; restore_snapshot(model, snapshot).
  get_masks(model) -> Masks; raw_masks(model) -> {key: array}, unchecked; set_masks(model, masks).
  masked_variables(model) -> {key: (weight variable, mask variable)} of each pruned weight.
  pruned_weights(model) -> [(layer, name, weight variable)] of each pruned weight, in model order:
    the wrapped layer and the weight's name there ('kernel'), whose `<name>_initializer` made it.
  layer_rates(model); pruning_groups(model); get_effective_weights(model); get_stored_weights(model).
  apply_masks_to_weights(model, only_masked_in_call=False); constrained_layers(model) -> names
    of the layers whose forward pass reads the stored weights, so the optimizer must keep their
    pruned weights at 0 (tf_keras: by a variable constraint; Keras 3: by zero gradients).
  begin_fit(model, optimizer); end_fit(model): around each fit of the callback's (the Keras 3
    adapter picks there how its layers mask for that optimizer; see lth_keras.keras3.layers).
  enable_training(model); mark_round(model, index); marked_round(model) -> Optional[int].
  learning_rate_value(optimizer) -> Optional[float].
  optimizer_reset(model, optimizer) -> an object whose reset(iterations) puts the optimizer back.
  weight_copy(model) -> a WeightCopy (capture, swap, arrays, copies).
  weights_finite(model) -> bool.
  evaluate(model, data, batch_size) -> {metric: float}, leaving the model's metrics as they were.
  callbacks_beside(callback) -> the other callbacks of the fit calling `callback`'s hook.
  check_callbacks_beside(others): refuses or warns about the others (see lth_keras.neighbours).
  is_progress_bar(callback) -> bool.
"""

import importlib
from typing import Callable, Dict

# The adapter of each framework, by the package its model classes come from.
_ADAPTERS = {"tf_keras": "lth_keras.adapters.tf_keras", "keras": "lth_keras.adapters.keras3"}
_KERAS_PACKAGES = ("tf_keras", "keras")


def framework_of(model):
    """'tf_keras', 'keras' (Keras 3) or None: the package of the first Keras class in the model's MRO
    (a user's subclass of a Keras model counts as that Keras's)."""
    for cls in type(model).__mro__:
        package = cls.__module__.split(".")[0]
        if package in _KERAS_PACKAGES:
            return package
    return None


def for_model(model, argument: str = "model"):
    """The adapter module of `model`'s framework; TypeError naming the model's type otherwise."""
    framework = framework_of(model)
    if framework not in _ADAPTERS:
        raise TypeError(unsupported_model(model, argument, accepted="a tf_keras or Keras 3 Model"))
    return importlib.import_module(_ADAPTERS[framework])


def unsupported_model(model, argument: str = "model", accepted: str = "a tf_keras Model") -> str:
    """Why `model` cannot be used where `accepted` can (by default only tf_keras models), naming its type."""
    if framework_of(model) == "keras":
        return (
            f"`{argument}` is a Keras 3 model ({type(model).__module__}.{type(model).__name__}), and "
            "this works on tf_keras (Keras 2) models only, through tfmot's pruning wrappers. Keras 3 "
            "models are prepared by lth_keras.prune_for_lottery too (lth_keras.keras3); or build the "
            "model with `lth_keras.keras` (the tf_keras package)."
        )
    return f"`{argument}` must be {accepted}, got {type(model).__name__}: {model!r}"


def evaluate_keeping_metrics(model, evaluate: Callable[[], Dict], to_numpy: Callable) -> Dict[str, float]:
    """`evaluate()`'s metrics as floats, with the model's running metrics (the epoch's training
    values, which an evaluation resets) put back afterwards; `to_numpy` reads a variable."""
    state = [(variable, to_numpy(variable)) for metric in model.metrics for variable in metric.variables]
    results = evaluate()
    for variable, value in state:
        variable.assign(value)
    return {name: float(value) for name, value in results.items()}
