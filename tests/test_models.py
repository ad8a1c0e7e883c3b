"""The papers' networks: shapes, weight counts against Frankle & Carbin (2019), seeding."""

import functools

import numpy as np
import pytest

import lth_keras
from lth_keras.paper import models

keras = lth_keras.keras

ALL = sorted(models.MODELS)

# Frankle & Carbin 2019, Figure 2 ("Weights" row).
PAPER_WEIGHTS = {
    "lenet": 266_000,
    "conv2": 4_300_000,
    "conv4": 2_400_000,
    "resnet18": 274_000,
    "vgg19": 20_000_000,
}


def _conv3x3(cin, cout):
    return 3 * 3 * cin * cout


# Conv-6 built as described; the paper's Figure 2 says 1.7M.
CONV6_WEIGHTS = (
    _conv3x3(3, 64)
    + _conv3x3(64, 64)
    + _conv3x3(64, 128)
    + _conv3x3(128, 128)
    + _conv3x3(128, 256)
    + _conv3x3(256, 256)
    + (32 // 8) * (32 // 8) * 256 * 256
    + 256 * 256
    + 256 * 10
)


@functools.lru_cache(maxsize=None)
def default_model(key):
    """Each registry model built once with its defaults (building VGG-19 is the slow part)."""
    return models.MODELS[key]()


def _batch(model, n=2):
    shape = (n,) + tuple(model.input_shape[1:])
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _kernels(model):
    return {w.name: w.numpy() for w in model.weights if "kernel" in w.name}


@pytest.mark.parametrize("key", ALL)
def test_builds_with_logits_of_ten_classes(key):
    model = default_model(key)
    assert isinstance(model, keras.Model)
    outputs = model(_batch(model), training=False)
    assert tuple(outputs.shape) == (2, 10)
    assert model.layers[-1].name == "output"
    assert model.layers[-1].activation is keras.activations.linear


@pytest.mark.parametrize("key", ALL)
def test_forward_pass_is_finite(key):
    model = default_model(key)
    for training in (False, True):
        assert np.all(np.isfinite(model(_batch(model), training=training).numpy()))


@pytest.mark.parametrize("key", ALL)
def test_layer_names_are_unique(key):
    names = [layer.name for layer in default_model(key).layers]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("key", sorted(PAPER_WEIGHTS))
def test_weight_count_matches_the_paper(key):
    count = models.prunable_weight_count(default_model(key))
    assert count == pytest.approx(PAPER_WEIGHTS[key], rel=0.02)


def test_exact_weight_counts():
    lenet = 28 * 28 * 300 + 300 * 100 + 100 * 10
    assert models.prunable_weight_count(default_model("lenet")) == lenet == 266_200
    assert CONV6_WEIGHTS == 2_261_184
    assert models.prunable_weight_count(default_model("conv6")) == CONV6_WEIGHTS
    assert str(CONV6_WEIGHTS) in models.conv6.__doc__.replace(",", "")
    resnet20 = models.prunable_weight_count(default_model("resnet20"))
    assert resnet20 == models.prunable_weight_count(default_model("resnet18"))
    stages = (
        _conv3x3(3, 16)
        + 6 * _conv3x3(16, 16)
        + _conv3x3(16, 32)
        + 5 * _conv3x3(32, 32)
        + 16 * 32
        + _conv3x3(32, 64)
        + 5 * _conv3x3(64, 64)
        + 32 * 64
    )
    assert resnet20 == stages + 64 * 10


def test_count_skips_biases_and_batch_norm_and_sees_through_wrappers():
    model = models.resnet_cifar(8)
    biases = 10  # only the output layer has a bias; convolutions are followed by batch norm
    batch_norm = 4 * sum(
        layer.weights[0].shape[0]
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert models.prunable_weight_count(model) == model.count_params() - biases - batch_norm
    lenet = models.lenet_300_100()
    wrapped = lth_keras.prune_for_lottery(lenet, pruning_rate=0.2)
    assert models.prunable_weight_count(wrapped) == models.prunable_weight_count(lenet)


@pytest.mark.parametrize("key", ALL)
def test_same_seed_same_weights_other_seed_other_weights(key):
    reference = default_model(key)
    again = models.MODELS[key](seed=0)
    # Trainable only: the cached reference's batch-norm statistics moved in a training-mode call.
    assert len(reference.trainable_weights) == len(again.trainable_weights)
    for a, b in zip(reference.trainable_weights, again.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = _kernels(models.MODELS[key](seed=1))
    seed0 = _kernels(reference)
    for name, kernel in other.items():
        assert not np.array_equal(kernel, seed0[name]), name
    for name, kernel in other.items():  # no kernel of seed 1 repeats any kernel of seed 0
        same_shape = [k for k in seed0.values() if k.shape == kernel.shape]
        assert not any(np.array_equal(kernel, k) for k in same_shape), name


@pytest.mark.parametrize("key", ["conv2", "conv4", "conv6"])
def test_conv_nets_layer_names_and_dropout(key):
    convs = int(key[-1])
    model = models.MODELS[key](input_shape=(16, 16, 1), num_classes=3, dropout=0.5)
    names = {layer.name for layer in model.layers}
    assert {f"conv{i}" for i in range(1, convs + 1)} | {"fc1", "fc2", "output"} <= names
    assert {"dropout1", "dropout2"} <= names
    assert model.get_layer("dropout1").rate == 0.5
    assert tuple(model(_batch(model)).shape) == (2, 3)
    assert all(not isinstance(layer, keras.layers.Dropout) for layer in models.MODELS[key]().layers)
    with pytest.raises(ValueError, match="dropout"):
        models.MODELS[key](dropout=1.0)


def test_vgg_and_resnet_layout():
    vgg16 = models.vgg16(input_shape=(16, 16, 3))
    convs = [layer for layer in vgg16.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.name for c in convs] == [f"conv{i}" for i in range(1, 14)]
    assert all(isinstance(vgg16.get_layer(f"{c.name}_bn"), keras.layers.BatchNormalization) for c in convs)
    assert models.prunable_weight_count(vgg16) == 14_715_584

    resnet = models.resnet_cifar(14, width=8, input_shape=(8, 8, 3), num_classes=4)
    assert resnet.name == "resnet14"
    assert tuple(resnet(_batch(resnet)).shape) == (2, 4)
    shortcuts = [layer.name for layer in resnet.layers if layer.name.endswith("_shortcut")]
    assert shortcuts == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert resnet.get_layer("stage3_block2_conv2").output.shape[1:] == (2, 2, 32)
    for depth in (7, 9, 2):
        with pytest.raises(ValueError, match="6n"):
            models.resnet_cifar(depth)
