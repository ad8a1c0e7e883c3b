"""A Keras 3 model's layers and the graph between them, and the checks that it is one.

`prune_for_lottery` copies a model layer by layer, so it needs a Sequential or functional
Keras 3 model: one whose layers, and how they connect, can be read from the outside.
"""

from typing import List

import keras
from keras.src.models.functional import Functional  # not exported; the class of every functional model

KERAS2_MODULES = ("tf_keras", "keras.engine", "keras.src.engine", "tensorflow.python.keras")


def _is_keras2(obj) -> bool:
    return type(obj).__module__.startswith(KERAS2_MODULES)


def check_keras3_model(model, argument: str = "model") -> None:
    """Raises TypeError unless `model` is a Keras 3 model (a tf_keras one is pointed elsewhere).

    Example:
      >>> check_keras3_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    """
    if isinstance(model, keras.Model):
        return
    if _is_keras2(model):
        raise TypeError(
            f"`{argument}` is a tf_keras (Keras 2) model ({type(model).__module__}.{type(model).__name__}); "
            "lth_keras.keras3 works on Keras 3 models: use lth_keras.prune_for_lottery (and the rest of "
            "lth_keras) for it"
        )
    raise TypeError(f"`{argument}` must be a Keras 3 Model, got {type(model).__name__}: {model!r}")


def check_graph_model(model) -> None:
    """Raises unless `model` is a built Sequential or functional Keras 3 model of Keras 3 layers."""
    check_keras3_model(model)
    for inner in [model] + [layer for layer in flat_layers(model) if isinstance(layer, keras.Model)]:
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
        foreign = [name for name, value in vars(layer).items() if _is_keras2(value)]
        if foreign:
            raise TypeError(
                f"model {model.name!r} mixes in tf_keras (Keras 2) layers: layer {layer.name!r} holds "
                f"{', '.join(foreign)}, which Keras 3 neither trains nor saves; build it of Keras 3 layers"
            )


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
