"""The papers' networks, built as plain tf_keras models with stable layer names."""

from typing import Sequence

from lth_keras._keras import keras


def lenet_300_100(
    input_shape: Sequence[int] = (28, 28),
    num_classes: int = 10,
    hidden: Sequence[int] = (300, 100),
    seed: int = 0,
    name: str = "lenet_300_100",
):
    """LeNet-300-100: fully connected 300-100-10, ReLU, Glorot normal init (266K weights)."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(
            width,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotNormal(seed=seed + i),
            name=f"fc{i + 1}",
        )(x)
    outputs = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.GlorotNormal(seed=seed + len(hidden)),
        name="output",
    )(x)
    return keras.Model(inputs, outputs, name=name)
