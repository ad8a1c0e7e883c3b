"""lth_keras.keras3.prune_for_lottery: which weights get masks, at what rate, and what it refuses."""

import re
import warnings

import keras
import numpy as np
import pytest
from keras3_models import conv_model, dense_model, mixed_model

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.notices import LotteryWarning


def test_a_copy_with_all_ones_masks_on_the_kernels_only_and_the_original_untouched():
    model = dense_model()
    before = [np.array(w) for w in model.get_weights()]
    pruned = lth3.prune_for_lottery(model)
    assert list(lth3.masked_variables(pruned)) == ["fc1/kernel", "fc2/kernel", "out/kernel"]
    assert all(np.all(mask == 1) for mask in lth3.get_masks(pruned).values())
    assert not lth3.lottery_layers(model, require=False)
    for original, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(original, now)
    snapshot = lth3.take_snapshot(pruned)
    for layer in lth3.flat_layers(model):
        for weight in layer.weights:
            np.testing.assert_array_equal(
                snapshot[f"{layer.name}/{weight.name}"], keras.ops.convert_to_numpy(weight)
            )


def test_the_output_layer_gets_half_the_rate_convolutions_theirs_and_named_layers_their_own():
    rates = lth3.layer_rates(lth3.prune_for_lottery(conv_model(), pruning_rate=0.2, conv_pruning_rate=0.1))
    assert rates == {"conv1/kernel": 0.1, "conv2/kernel": 0.1, "fc/kernel": 0.2, "out/kernel": 0.1}
    pruned = lth3.prune_for_lottery(
        dense_model(), 0.4, output_pruning_rate=0.3, layer_pruning_rates={"fc2": 0.5}, exclude=["fc1"]
    )
    assert lth3.layer_rates(pruned) == {"fc2/kernel": 0.5, "out/kernel": 0.3}
    assert [layer.scope for layer in lth3.lottery_layers(pruned)] == ["layerwise", "layerwise"]


def test_every_supported_kind_is_masked_and_each_model_output_is_an_output_layer():
    pruned = lth3.prune_for_lottery(mixed_model(), pruning_rate=0.2, scope="global")
    assert lth3.layer_rates(pruned) == {
        "embed/embeddings": 0.2,
        "conv1d/kernel": 0.2,
        "conv3d/kernel": 0.2,
        "head_a/kernel": 0.1,
        "head_b/kernel": 0.1,
    }
    assert lth3.pruning_groups(pruned) == [
        ["embed/embeddings", "conv1d/kernel", "conv3d/kernel"],
        ["head_a/kernel", "head_b/kernel"],
    ]


def test_the_output_layer_is_found_through_a_nested_model_and_past_layers_without_weights():
    inner = dense_model(name="inner")
    inputs = keras.Input((20,))
    h = inner(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Dropout(0.1, name="drop")(h))
    nested = lth3.prune_for_lottery(keras.Model(inputs, outputs), pruning_rate=0.2)
    assert lth3.layer_rates(nested)["head/kernel"] == 0.1
    assert lth3.layer_rates(nested)["out/kernel"] == 0.2
    inside = lth3.prune_for_lottery(keras.Model(inputs, inner(inputs)), pruning_rate=0.2)
    assert lth3.layer_rates(inside) == {"fc1/kernel": 0.2, "fc2/kernel": 0.2, "out/kernel": 0.1}


def test_the_copy_computes_what_the_original_computes():
    model = mixed_model()
    x = np.random.default_rng(0).integers(0, 11, size=(5, 6)).astype("int32")
    for want, got in zip(model.predict(x, verbose=0), lth3.prune_for_lottery(model).predict(x, verbose=0)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"pruning_rate": 1.5}, ValueError, "`pruning_rate` must be in [0, 1), got 1.5"),
        ({"pruning_rate": "0.2"}, TypeError, "`pruning_rate` must be a number in [0, 1), got '0.2'"),
        ({"output_pruning_rate": -0.1}, ValueError, "`output_pruning_rate` must be in [0, 1), got -0.1"),
        ({"conv_pruning_rate": True}, TypeError, "`conv_pruning_rate` must be a number in [0, 1), got True"),
        ({"scope": "both"}, ValueError, "`scope` must be one of ['layerwise', 'global'], got 'both'"),
        ({"layer_pruning_rates": [0.1]}, TypeError, "`layer_pruning_rates` must be a mapping"),
        ({"layer_pruning_rates": {"fc1": 1}}, ValueError, "`layer_pruning_rates['fc1']` must be in [0, 1)"),
        (
            {"layer_pruning_rates": {"nope": 0.1}},
            ValueError,
            "names layers the model does not have: ['nope']",
        ),
        ({"exclude": 3}, TypeError, "`exclude` must be layer names, got 3"),
        ({"exclude": ["fc1", 2]}, TypeError, "`exclude` must hold layer names (strings), got 2"),
        ({"exclude": ["nope"]}, ValueError, "`exclude` names layers the model does not have: ['nope']"),
        ({"exclude": ["fc1", "fc2", "out"]}, ValueError, "has no layer to prune among"),
        ({"layer_pruning_rates": {"bn": 0.1}}, ValueError, "names layer 'bn', which has no prunable weights"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        lth3.prune_for_lottery(dense_model(), **kwargs)


def test_an_unsupported_layer_named_in_layer_pruning_rates_is_refused_and_else_said_to_stay_dense():
    model = keras.Sequential(
        [
            keras.Input((5, 2)),
            keras.layers.Conv1DTranspose(3, 2, name="up"),
            keras.layers.Dense(2, name="out"),
        ]
    )
    for prune in (lth3.prune_for_lottery, lth_keras.prune_for_lottery):
        with pytest.raises(
            ValueError, match=r"names layer 'up', which has no prunable weights \(Conv1DTranspose; "
        ):
            prune(model, layer_pruning_rates={"up": 0.2})
    with pytest.warns(LotteryWarning, match=r"stay dense.*up \(Conv1DTranspose: kernel\)"):
        lth3.prune_for_lottery(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LotteryWarning)
        lth3.prune_for_lottery(model, exclude=["up"])


def test_a_rate_that_empties_a_layer_in_the_first_round_is_warned_about():
    tiny = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="one")])
    with pytest.warns(LotteryWarning, match="prunes all 1 remaining weights of 'one/kernel'"):
        lth3.prune_for_lottery(tiny, output_pruning_rate=0.5)


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fc = keras.layers.Dense(2)

    def call(self, x):
        return self.fc(x)


def test_models_it_cannot_copy_are_refused_naming_why():
    subclassed = Subclassed(name="custom")
    subclassed(np.zeros((1, 3), "float32"))
    inputs = keras.Input((3,))
    holding = keras.Model(inputs, keras.layers.Dense(2, name="head")(subclassed(inputs)))
    for model in (subclassed, holding):  # alone, or inside a functional model
        for prune in (lth3.prune_for_lottery, lth_keras.prune_for_lottery):
            with pytest.raises(
                TypeError,
                match=r"Subclassed \('custom'\) is a subclassed model: its layers and how they connect",
            ):
                prune(model)
    with pytest.raises(ValueError, match="is not built"):
        lth3.prune_for_lottery(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="already has lottery-ticket layers"):
        lth3.prune_for_lottery(lth3.prune_for_lottery(dense_model()))
    inputs = keras.Input((20,))
    twice = keras.Model(inputs, [dense_model(name="a")(inputs), dense_model(name="b")(inputs)])
    with pytest.raises(ValueError, match="two different layers named 'fc1'"):
        lth3.prune_for_lottery(twice)
    with pytest.raises(TypeError, match="must be a Keras 3 Model, got str"):
        lth3.prune_for_lottery("model")
    with pytest.raises(ValueError, match=r"has no lottery-ticket layers: prepare it with lth_keras.keras3"):
        lth3.get_masks(dense_model())


class Block(keras.layers.Layer):
    """A custom layer of two Dense layers (whose weights are keyed by the block's name), or of
    one and a weight of its own."""

    def __init__(self, twice=True, **kwargs):
        super().__init__(**kwargs)
        self.twice = twice
        self.first = keras.layers.Dense(4, name="first")
        self.second = keras.layers.Dense(4, name="second") if twice else None

    def build(self, input_shape):
        self.first.build(input_shape)
        if self.twice:
            self.second.build((None, 4))
        else:
            self.mixing = self.add_weight(shape=(4, 4), name="mixing")

    def call(self, x):
        h = self.first(x)
        return self.second(h) if self.twice else keras.ops.matmul(h, self.mixing)

    def get_config(self):
        return {**super().get_config(), "twice": self.twice}


def _with_block(**kwargs):
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(Block(name="block", **kwargs)(inputs)))


def test_a_custom_layer_whose_inner_weights_share_a_key_is_refused_when_prepared_naming_it():
    for prune in (lth3.prune_for_lottery, lth_keras.prune_for_lottery):
        with pytest.raises(
            ValueError,
            match=r"layer 'block' \(Block\) holds two weights keyed 'block/kernel' "
            r"\(block/first/kernel and block/second/kernel\).*cannot be told apart",
        ):
            prune(_with_block())
    with pytest.warns(LotteryWarning, match=r"stay dense.*block \(Block: mixing, kernel\)"):
        pruned = lth_keras.prune_for_lottery(_with_block(twice=False))
    assert {"block/kernel", "block/mixing", "out/kernel"} <= set(lth_keras.take_snapshot(pruned))


def test_a_tf_keras_model_or_layer_is_refused_pointing_to_lth_keras():
    tf_keras = pytest.importorskip("tf_keras")
    old = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
    with pytest.raises(TypeError, match=r"is a tf_keras \(Keras 2\) model .*use lth_keras.prune_for_lottery"):
        lth3.prune_for_lottery(old)
    with pytest.raises(TypeError, match=r"tf_keras \(Keras 2\) model"):
        lth3.take_snapshot(old)

    class Holder(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = tf_keras.layers.Dense(2)

        def call(self, x):
            return x

    def holding(inner):
        holder = Holder(name="holder")
        holder.inner = inner
        inputs = keras.Input((3,))
        return keras.Model(inputs, keras.layers.Dense(2, name="fc")(holder(inputs)))

    dense = tf_keras.layers.Dense(2, name="old_dense")
    for inner in (dense, [keras.layers.Dense(2), dense], {"block": (dense,)}):  # alone or in a container
        for prune in (lth3.prune_for_lottery, lth_keras.prune_for_lottery):
            with pytest.raises(TypeError, match="mixes in tf_keras .* layer 'holder' holds inner"):
                prune(holding(inner))
