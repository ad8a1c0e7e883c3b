"""A Keras 3 model's layers and the graph between them, and the checks that it is one.

`prune_for_lottery` copies a model layer by layer, so it needs a Sequential or functional
Keras 3 model: one whose layers, and how they connect, can be read from the outside.
"""

import sys
from typing import List, Optional

import keras
from keras.src.models.functional import Functional  # not exported; the class of every functional model

KERAS2_MODULES = ("tf_keras", "keras.engine", "keras.src.engine", "tensorflow.python.keras")


def _is_keras2(obj) -> bool:
    return type(obj).__module__.startswith(KERAS2_MODULES)


def _holds_keras2(value) -> bool:
    """Whether `value` is a tf_keras object or a list, tuple or dict holding one (a layer's
    attribute: `self.blocks = [tf_keras.layers.Dense(2)]`)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_keras2(item) for item in value)
    return _is_keras2(value)


def check_keras3_model(model, argument: str = "model") -> None:
    """Raises TypeError unless `model` is a Keras 3 model (a tf_keras one is pointed elsewhere);
    ValueError for one of another import of Keras (keras.config.set_backend since).

    Example:
      >>> check_keras3_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    """
    if isinstance(model, keras.Model) and sys.modules.get("keras", keras) is keras:
        return
    if _backend_of(model) is not None:
        refuse_other_keras(model, argument)
    if _is_keras2(model):
        raise TypeError(
            f"`{argument}` is a tf_keras (Keras 2) model ({type(model).__module__}.{type(model).__name__}); "
            "lth_keras.keras3 works on Keras 3 models: use lth_keras.prune_for_lottery (and the rest of "
            "lth_keras) for it"
        )
    raise TypeError(f"`{argument}` must be a Keras 3 Model, got {type(model).__name__}: {model!r}")


def _backend_of(obj) -> Optional[str]:
    """The backend a Keras 3 layer or model was made on: that of its backend class
    (keras.src.backend.<backend>.layer, .trainer); None for anything else."""
    for cls in type(obj).__mro__:
        parts = cls.__module__.split(".")
        if parts[:3] == ["keras", "src", "backend"] and len(parts) > 3:
            return parts[3]
    return None


def refuse_other_keras(obj, argument: str) -> None:
    """ValueError for a Keras 3 layer or model of another import of Keras than this package's, or
    made before Keras was imported again: keras.config.set_backend reloads Keras, and the model,
    its variables and these functions would mix the two (an error deep inside Keras, at best).
    A ValueError, not a TypeError: it is a Keras 3 model, of the wrong moment; and Keras passes a
    ValueError raised while it builds a model on as it is (others it rewraps)."""
    now = sys.modules["keras"].backend.backend() if "keras" in sys.modules else "none"
    raise ValueError(
        f"`{argument}` ({obj.name!r}) was built on the {_backend_of(obj)} backend and "
        f"lth_keras.keras3 was imported with Keras on {keras.backend.backend()}, but Keras now runs "
        f"on {now}: keras.config.set_backend reloads Keras, and models, layers and optimizers made "
        "before it do not work with those made after. Use one backend per process: set "
        "KERAS_BACKEND before Python starts"
    )


def check_graph_model(model) -> None:
    """Raises unless `model` is a built Sequential or functional Keras 3 model of Keras 3 layers."""
    check_keras3_model(model)
    for inner in _models_in(model):
        if not isinstance(inner, (keras.Sequential, Functional)):
            raise TypeError(
                f"{type(inner).__name__} ({inner.name!r}) is a subclassed model: its layers and how they "
                "connect cannot be found from outside it, so it cannot be copied with masks; build it "
                "as a Sequential or functional model"
            )
    if not model.built or not model.outputs:
        raise ValueError(
            f"model {model.name!r} is not built: give it an Input or call "
            "model.build(input_shape) first, so its initial weights exist."
        )
    for layer in flat_layers(model):
        foreign = [
            name
            for name, value in vars(layer).items()
            if _holds_keras2(value) and not name.startswith("_self_")  # TensorFlow's tracking copies
        ]
        if foreign:
            raise TypeError(
                f"model {model.name!r} mixes in tf_keras (Keras 2) layers: layer {layer.name!r} holds "
                f"{', '.join(foreign)}, which Keras 3 neither trains nor saves; build it of Keras 3 layers"
            )


def _models_in(model) -> List:
    """`model` and every model nested in it (flat_layers expands them, so it cannot list them)."""
    models = [model]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            models.extend(_models_in(layer))
    return models


def flat_layers(model) -> List:
    """All layers of `model`, nested models expanded, input layers left out, in model order."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.extend(flat_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            layers.append(layer)
    return layers


def output_layers(model, candidates) -> set:
    """Names of the `candidates` that feed an output of `model` with no candidate between.

    Walks the graph back from the model's outputs, into nested models and out of them again
    through the node that called them.
    """
    found, seen = set(), set()
    resume = {}  # id of a nested model's input layer -> the outer node that called the model
    stack = [_node_of(tensor) for tensor in model.outputs]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        operation = node.operation
        if operation.name in candidates:
            found.add(operation.name)
        elif isinstance(operation, keras.Model):
            resume.update((id(_node_of(tensor).operation), node) for tensor in operation.inputs)
            stack.extend(_node_of(tensor) for tensor in operation.outputs)
        elif id(operation) in resume:
            stack.extend(resume[id(operation)].parent_nodes)
        else:
            stack.extend(node.parent_nodes)
    return found


def _node_of(tensor):
    """The graph node that made a symbolic tensor, from its Keras history."""
    history = tensor._keras_history
    return history.operation._inbound_nodes[history.node_index]
