"""prune_for_lottery: which layers get wrapped at which rate; strip; save and load."""

import keras as keras3
import numpy as np
import pytest

import lth_keras
from lth_keras.model_state import masked_variables
from lth_keras.wrapping import PruneLowMagnitude, lottery_layers
from tests.conftest import compile_model, conv_model, dense_data, dense_model

keras = lth_keras.keras


def _rates(model):
    return {l.layer.name: l.pruning_schedule.pruning_rate for l in lottery_layers(model)}


def test_wraps_prunable_layers_with_default_rates():
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.2)
    assert _rates(model) == {"fc1": 0.2, "fc2": 0.2, "out": pytest.approx(0.1)}
    assert set(masked_variables(model)) == {"fc1/kernel", "fc2/kernel", "out/kernel"}
    assert not isinstance(model.get_layer("bn"), PruneLowMagnitude)


def test_conv_rate_output_rate_overrides_and_exclusion():
    model = lth_keras.prune_for_lottery(
        conv_model(),
        pruning_rate=0.2,
        conv_pruning_rate=0.1,
        output_pruning_rate=0.05,
        layer_pruning_rates={"conv2": 0.15},
    )
    assert _rates(model) == {"conv1": 0.1, "conv2": 0.15, "fc": 0.2, "out": 0.05}
    excluded = lth_keras.prune_for_lottery(conv_model(), exclude=["fc"])
    assert set(_rates(excluded)) == {"conv1", "conv2", "out"}
    assert not isinstance(excluded.get_layer("fc"), PruneLowMagnitude)


def test_scope_is_stored_in_each_schedule():
    model = lth_keras.prune_for_lottery(conv_model(), scope="global")
    assert {l.pruning_schedule.scope for l in lottery_layers(model)} == {"global"}


def test_output_layer_found_behind_a_weightless_activation():
    inputs = keras.Input((5,))
    h = keras.layers.Dense(4, name="hidden")(inputs)
    h = keras.layers.Dense(3, name="last")(h)
    outputs = keras.layers.Softmax(name="softmax")(h)
    model = lth_keras.prune_for_lottery(keras.Model(inputs, outputs), pruning_rate=0.4)
    assert _rates(model) == {"hidden": 0.4, "last": 0.2}


def test_output_layer_found_inside_a_nested_model():
    head = keras.Sequential(
        [keras.layers.Dense(6, name="fc2"), keras.layers.Dense(3, name="out")], name="head"
    )
    plain = keras.Sequential([keras.layers.Softmax(name="softmax")], name="probabilities")
    inputs = keras.Input((5,))
    outputs = plain(head(keras.layers.Dense(4, name="fc1")(inputs)))
    model = lth_keras.prune_for_lottery(keras.Model(inputs, outputs), pruning_rate=0.4)
    assert _rates(model) == {"fc1": 0.4, "fc2": 0.4, "out": 0.2}


def test_copy_starts_with_the_same_weights_and_leaves_the_original_alone():
    original = dense_model()
    before = [w.copy() for w in original.get_weights()]
    model = lth_keras.prune_for_lottery(original)
    for name in ("fc1", "fc2", "out", "bn"):
        layer = model.get_layer(name) if name == "bn" else model.get_layer(f"prune_low_magnitude_{name}")
        for mine, theirs in zip(layer.get_weights(), original.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    compile_model(model).fit(*dense_data(), epochs=1, verbose=0)
    for a, b in zip(before, original.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_prepared_model_trains_without_tfmot_callbacks():
    model = compile_model(lth_keras.prune_for_lottery(dense_model()))
    history = model.fit(*dense_data(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pruning_rate": 1.0}, "pruning_rate"),
        ({"pruning_rate": -0.2}, "pruning_rate"),
        ({"output_pruning_rate": 1.2}, "output_pruning_rate"),
        ({"conv_pruning_rate": -1}, "conv_pruning_rate"),
        ({"layer_pruning_rates": {"fc1": 2.0}}, "fc1"),
        ({"layer_pruning_rates": {"nope": 0.2}}, "nope"),
        ({"layer_pruning_rates": {"bn": 0.2}}, "bn"),
        ({"exclude": ["missing"]}, "missing"),
        ({"scope": "local"}, "local"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lth_keras.prune_for_lottery(dense_model(), **kwargs)


def test_a_keras3_model_takes_the_keras3_path():
    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2, name="fc")])
    pruned = lth_keras.prune_for_lottery(model)
    assert any(isinstance(layer, lth_keras.keras3.LotteryMask) for layer in pruned.layers)
    assert list(lth_keras.get_masks(pruned)) == ["fc/kernel"]


def test_keras3_model_is_refused_by_the_tf_keras_only_functions_naming_the_keras3_path():
    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2)])
    for tf_keras_only in (lth_keras.wrapping.prune_for_lottery, lth_keras.wrapping.strip):
        with pytest.raises(TypeError, match="Keras 3 model.*lth_keras.prune_for_lottery"):
            tf_keras_only(model)
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(TypeError, match="Keras 3 model"):
        lth_keras.fuse_steps(model)
    with pytest.raises(TypeError, match="tf_keras or Keras 3 Model, got str"):
        lth_keras.get_masks("not a model")


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="subclassed"):
        lth_keras.prune_for_lottery(net)


def test_unbuilt_and_already_wrapped_models_are_refused():
    with pytest.raises(ValueError, match="not built"):
        lth_keras.prune_for_lottery(keras.Sequential([keras.layers.Dense(2)]))
    wrapped = lth_keras.prune_for_lottery(dense_model())
    with pytest.raises(ValueError, match="already"):
        lth_keras.prune_for_lottery(wrapped)


def test_strip_gives_a_plain_independent_model_with_exact_zeros():
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
    compile_model(model)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    x, y = dense_data()
    model.fit(x, y, epochs=2, callbacks=[ticket], verbose=0)
    masks = lth_keras.get_masks(model)
    plain = lth_keras.strip(model)
    assert not any(isinstance(l, PruneLowMagnitude) for l in plain.layers)
    for key, mask in masks.items():
        kernel = plain.get_layer(key.split("/")[0]).kernel.numpy()
        assert np.all(kernel[mask == 0] == 0.0)
        assert np.count_nonzero(kernel) == np.count_nonzero(mask)  # survivors are not zero
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    before = plain.get_weights()
    compile_model(plain).fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, plain.get_weights()))
    for key, mask in masks.items():  # training the copy leaves the lottery model alone
        np.testing.assert_array_equal(lth_keras.get_masks(model)[key], mask)


@pytest.mark.parametrize("filename", ["model.keras", "model.h5", "saved_model"])
def test_model_save_and_load_keep_masks(tmp_path, filename):
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    x, y = dense_data()
    model.fit(x, y, epochs=3, callbacks=[ticket], verbose=0)
    path = str(tmp_path / filename)
    model.save(path)
    loaded = lth_keras.load_model(path)
    assert _rates(loaded) == _rates(model)
    for key, mask in lth_keras.get_masks(model).items():
        np.testing.assert_array_equal(lth_keras.get_masks(loaded)[key], mask)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    # The loaded model keeps training with its masks: its optimizer still applies the mask
    # constraint, so its weight variables stay 0 where the saved model pruned.
    loaded.fit(x, y, epochs=1, verbose=0)
    masks = lth_keras.get_masks(model)
    for key, (weight, mask) in masked_variables(loaded).items():
        np.testing.assert_array_equal(mask.numpy(), masks[key])
        assert np.all(weight.numpy()[masks[key] == 0] == 0), key


def test_pruned_weights_are_kept_at_zero_by_a_constraint_embeddings_by_masking_in_call():
    inputs = keras.Input((5,), dtype="int32")
    hidden = keras.layers.Embedding(50, 8, name="embed")(inputs)
    hidden = keras.layers.Flatten()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    wrapped = lth_keras.prune_for_lottery(model, pruning_rate=0.5, output_pruning_rate=0.5)
    embed, out = lottery_layers(wrapped)
    assert embed.masks_in_call and not out.masks_in_call
    assert out.pruning_vars[0][0].constraint is not None
    masks = {key: np.array(m) for key, m in lth_keras.get_masks(wrapped).items()}
    for mask in masks.values():
        mask.flat[::2] = 0.0
    lth_keras.set_masks(wrapped, masks)
    # A legacy optimizer refuses constraints on sparse (embedding) gradients: none is put there.
    wrapped.compile(
        optimizer=keras.optimizers.legacy.Adam(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    wrapped.fit(rng.integers(0, 50, (64, 5)), rng.integers(0, 3, 64), batch_size=16, verbose=0)
    out_kernel, out_mask = masked_variables(wrapped)["out/kernel"]
    assert np.all(out_kernel.numpy()[out_mask.numpy() == 0] == 0.0)  # after the last step, no call since
    # The embeddings' last update moved pruned entries (no constraint there); the next call
    # masks them before the lookup: every row comes out as the stored row times its mask.
    embeddings, _ = masked_variables(wrapped)["embed/embeddings"]
    pruned = masks["embed/embeddings"] == 0
    stored = embeddings.numpy()
    assert np.count_nonzero(stored[pruned]) > 0  # else the lookup could not show the masking
    looked_up = embed(np.arange(50, dtype=np.int32)[None]).numpy()[0]
    np.testing.assert_array_equal(looked_up, stored * masks["embed/embeddings"])
    assert np.all(embeddings.numpy()[pruned] == 0.0)  # the call masked the variable itself
