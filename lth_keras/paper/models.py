"""The papers' networks, built as plain functional models with stable layer names.

Every builder returns an uncompiled functional model that outputs logits (no softmax), built
with tf_keras by default, or with the Keras module given as `keras` (Keras 3, any backend:
the same layers, names and initial weights' distribution).
Kernels use Glorot normal initialisation; BatchNormalization follows the PyTorch
defaults of open_lth (momentum 0.9 in Keras terms, epsilon 1e-5).
"""

import zlib
from typing import Optional, Sequence

import numpy as np


CIFAR_SHAPE = (32, 32, 3)


def keras_module(keras=None):
    """The Keras the builders build with: `keras` if given (e.g. Keras 3's `keras`), else tf_keras."""
    if keras is not None:
        return keras
    from lth_keras._keras import keras as tf_keras  # only now: Keras 3 users may have no tf_keras

    return tf_keras


def lenet_300_100(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    hidden: Sequence[int] = (300, 100),
    seed: int = 0,
    dropout: float = 0.0,
    name: str = "lenet_300_100",
    keras=None,
):
    """LeNet-300-100: fully connected 300-100-10, ReLU, Glorot normal init (266,200 weights)."""
    keras = keras_module(keras)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    outputs = _classifier(keras, x, hidden, num_classes, seed, _check_dropout(dropout))
    return keras.Model(inputs, outputs, name=name)


# ----------------------------------------------------------------------------- layer helpers


def _layer_seed(seed: int, layer_name: str) -> int:
    """A 31-bit seed for one layer, derived from the model seed and the layer's name.

    Unlike `seed + index`, models built with neighbouring seeds share no layer seed, so
    trials with seeds 0, 1, 2... do not reuse each other's initial weights.
    """
    entropy = np.random.SeedSequence([seed, zlib.crc32(layer_name.encode("utf-8"))])
    return int(entropy.generate_state(1)[0] >> 1)


def _glorot(keras, seed: int, layer_name: str):
    return keras.initializers.GlorotNormal(seed=_layer_seed(seed, layer_name))


def _dense(keras, x, units: int, name: str, seed: int, activation=None):
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=_glorot(keras, seed, name), name=name
    )(x)


def _conv(
    keras,
    x,
    filters: int,
    name: str,
    seed: int,
    batch_norm: bool,
    relu: bool = True,
    kernel_size: int = 3,
    strides: int = 1,
):
    """Conv2D ('same' padding); with `batch_norm`: no bias, then BN `<name>_bn`, then ReLU."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        activation="relu" if relu and not batch_norm else None,
        use_bias=not batch_norm,  # the BN shift makes a bias redundant
        kernel_initializer=_glorot(keras, seed, name),
        kernel_regularizer=None,
        name=name,
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
        if relu:
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _classifier(keras, x, hidden: Sequence[int], num_classes: int, seed: int, dropout: float = 0.0):
    """Hidden ReLU layers fc1..fcN (each followed by dropout if > 0), then logits `output`."""
    for i, units in enumerate(hidden, start=1):
        x = _dense(keras, x, units, f"fc{i}", seed, activation="relu")
        if dropout:
            x = keras.layers.Dropout(dropout, seed=_layer_seed(seed, f"dropout{i}"), name=f"dropout{i}")(x)
    return _dense(keras, x, num_classes, "output", seed)


def _check_dropout(dropout: float) -> float:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}")
    return float(dropout)


# ----------------------------------------------------------------------------- Conv-2/4/6


def _conv_net(keras, stages: int, input_shape, num_classes, seed, dropout, name):
    """Frankle & Carbin's Conv-2/4/6: `stages` x (two 3x3 convs, 2x2 max pool), fc 256-256."""
    dropout = _check_dropout(dropout)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for stage in range(stages):
        for j in (1, 2):
            x = _conv(keras, x, 64 * 2**stage, f"conv{2 * stage + j}", seed, batch_norm=False)
        x = keras.layers.MaxPooling2D(2, name=f"pool{stage + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = _classifier(keras, x, (256, 256), num_classes, seed, dropout)
    return keras.Model(inputs, outputs, name=name)


def conv2(
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    dropout: float = 0.0,
    name: str = "conv2",
    keras=None,
):
    """Conv-2: conv 64, 64, pool; fc 256, 256, output. 4,300,992 weights (paper: 4.3M)."""
    keras = keras_module(keras)
    return _conv_net(keras, 1, input_shape, num_classes, seed, dropout, name)


def conv4(
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    dropout: float = 0.0,
    name: str = "conv4",
    keras=None,
):
    """Conv-4: Conv-2 plus conv 128, 128, pool. 2,425,024 weights (paper: 2.4M)."""
    keras = keras_module(keras)
    return _conv_net(keras, 2, input_shape, num_classes, seed, dropout, name)


def conv6(
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    dropout: float = 0.0,
    name: str = "conv6",
    keras=None,
):
    """Conv-6: Conv-4 plus conv 256, 256, pool.

    Built as described (3x3 'same' convs, three 2x2 pools, fc 256-256-10) it has
    2,261,184 weights, which differs from the 1.7M given in the paper's Figure 2:
    convs 1,728 + 36,864 + 73,728 + 147,456 + 294,912 + 589,824 = 1,144,512;
    fc 4*4*256*256 + 256*256 + 256*10 = 1,048,576 + 65,536 + 2,560 = 1,116,672.
    """
    keras = keras_module(keras)
    return _conv_net(keras, 3, input_shape, num_classes, seed, dropout, name)


# ----------------------------------------------------------------------------- VGG (CIFAR)

_VGG_WIDTHS = (64, 128, 256, 512, 512)
_VGG_CONVS_PER_STAGE = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def _vgg(keras, depth: int, input_shape, num_classes, seed, name):
    """CIFAR VGG: 3x3 conv-BN-ReLU stages split by 2x2 max pools, global average pool, dense."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    index = 0
    for stage, (count, filters) in enumerate(zip(_VGG_CONVS_PER_STAGE[depth], _VGG_WIDTHS)):
        if stage:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for _ in range(count):
            index += 1
            x = _conv(keras, x, filters, f"conv{index}", seed, batch_norm=True)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = _dense(keras, x, num_classes, "output", seed)
    return keras.Model(inputs, outputs, name=name)


def vgg16(
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    name: str = "vgg16",
    keras=None,
):
    """VGG-16 for CIFAR (2,2,3,3,3 convs per stage, BN after each). 14,715,584 weights."""
    keras = keras_module(keras)
    return _vgg(keras, 16, input_shape, num_classes, seed, name)


def vgg19(
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    name: str = "vgg19",
    keras=None,
):
    """VGG-19 for CIFAR (2,2,4,4,4 convs per stage, BN after each). 20,024,000 weights (20.0M)."""
    keras = keras_module(keras)
    return _vgg(keras, 19, input_shape, num_classes, seed, name)


# ----------------------------------------------------------------------------- ResNet (CIFAR)


def _residual_block(keras, x, filters: int, strides: int, name: str, seed: int):
    """conv-BN-ReLU, conv-BN, plus the input (through a 1x1 conv-BN if the shape changes), ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(
            keras,
            x,
            filters,
            f"{name}_shortcut",
            seed,
            batch_norm=True,
            relu=False,
            kernel_size=1,
            strides=strides,
        )
    y = _conv(keras, x, filters, f"{name}_conv1", seed, batch_norm=True, strides=strides)
    y = _conv(keras, y, filters, f"{name}_conv2", seed, batch_norm=True, relu=False)
    x = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def resnet_cifar(
    depth: int = 20,
    width: int = 16,
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    name: Optional[str] = None,
    keras=None,
):
    """He et al.'s CIFAR ResNet of `depth` = 6n + 2 layers.

    A 3x3 conv of `width` filters, then three stages of n residual blocks with width,
    2*width and 4*width filters (stride 2 at the first block of stages 2 and 3, 1x1
    conv shortcut where the shape changes), global average pool and a dense output.
    Blocks are named `stage{s}_block{b}`; no weight decay here (done elsewhere).
    """
    keras = keras_module(keras)
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"`depth` must be 6n + 2 with n >= 1, got {depth!r}")
    blocks = (depth - 2) // 6
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv(keras, inputs, width, "conv1", seed, batch_norm=True)
    for stage in range(3):
        for block in range(blocks):
            strides = 2 if stage and not block else 1
            x = _residual_block(
                keras, x, width * 2**stage, strides, f"stage{stage + 1}_block{block + 1}", seed
            )
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = _dense(keras, x, num_classes, "output", seed)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")


def resnet20(
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    name: str = "resnet20",
    keras=None,
):
    """ResNet-20 for CIFAR (the rewinding papers' name). 270,896 weights."""
    keras = keras_module(keras)
    return resnet_cifar(20, 16, input_shape, num_classes, seed, name, keras)


def resnet18(
    input_shape: Sequence[int] = CIFAR_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    name: str = "resnet18",
    keras=None,
):
    """The lottery-ticket paper's "ResNet-18": the same network as `resnet20` (paper: 274K)."""
    keras = keras_module(keras)
    return resnet_cifar(20, 16, input_shape, num_classes, seed, name, keras)


MODELS = {
    "lenet": lenet_300_100,
    "conv2": conv2,
    "conv4": conv4,
    "conv6": conv6,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "resnet18": resnet18,
    "resnet20": resnet20,
}


def prunable_weight_count(model) -> int:
    """Kernel weights of the Dense and Conv2D layers of a tf_keras model: what the papers count
    as "weights".

    Biases and batch-norm parameters are not counted; pruning wrappers are looked through.
    """
    from lth_keras.wrapping import flat_layers, unwrapped

    keras = keras_module()
    total = 0
    for layer in map(unwrapped, flat_layers(model)):
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            total += int(np.prod(layer.kernel.shape))
    return total
