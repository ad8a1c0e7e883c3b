"""fuse_steps: blocks of steps as one program train exactly as Keras's own loop does."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

import lth_keras
from lth_keras import pipelines
from tests.conftest import compile_model, conv_model, dense_data, dense_model

keras = lth_keras.keras
BLOCK = 4
STEPS_PER_EPOCH = 8


class CallCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batch_ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_ends.append((batch, int(self.model.optimizer.iterations.numpy()), dict(logs)))


def _trained(fused: bool, jit_compile: bool, epochs: int = 2):
    keras.utils.set_random_seed(7)
    model = compile_model(dense_model(), jit_compile=jit_compile, steps_per_execution=BLOCK)
    if fused:
        lth_keras.fuse_steps(model)
    x, y = dense_data()
    stream = pipelines.training_stream(x, y, 32, seed=5, steps_per_element=BLOCK if fused else 1)
    counter = CallCounter()
    history = model.fit(
        stream, steps_per_epoch=STEPS_PER_EPOCH, epochs=epochs, callbacks=[counter], verbose=0
    )
    return model, counter, history


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_fused_blocks_train_as_keras_loop_does(jit_compile):
    fused, fused_calls, fused_history = _trained(True, jit_compile)
    plain, plain_calls, plain_history = _trained(False, jit_compile)
    # Same steps on the same batches: the same weights (bit for bit without XLA, whose
    # compiled loop may fuse differently), optimizer state, metrics and callback calls.
    for a, b in zip(fused.weights, plain.weights):
        if jit_compile:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
        else:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    assert int(fused.optimizer.iterations.numpy()) == 2 * STEPS_PER_EPOCH
    assert int(fused._train_counter.numpy()) == int(plain._train_counter.numpy()) == 2 * STEPS_PER_EPOCH
    assert [c[:2] for c in fused_calls.batch_ends] == [c[:2] for c in plain_calls.batch_ends]
    assert [c[:2] for c in fused_calls.batch_ends] == [(3, 4), (7, 8), (3, 12), (7, 16)]
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(fused_history.history[name], plain_history.history[name], rtol=1e-5)
    assert lth_keras.fused_steps.is_fused(fused) and not lth_keras.fused_steps.is_fused(plain)
    assert fused.train_function.experimental_get_tracing_count() == 1  # one trace for both epochs


def test_lottery_rounds_under_fused_steps_trace_once():
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
    lth_keras.fuse_steps(compile_model(model, jit_compile=True, steps_per_execution=BLOCK))
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, rewind_step=BLOCK, verbose=0)
    x, y = dense_data()
    stream = pipelines.training_stream(x, y, 32, steps_per_element=BLOCK)
    model.fit(stream, steps_per_epoch=STEPS_PER_EPOCH, epochs=3, callbacks=[ticket], verbose=0)
    assert [r["round"] for r in ticket.rounds] == [0, 1, 2]
    assert model.train_function.experimental_get_tracing_count() == 1  # no retracing after a rewind


def test_compiling_again_returns_to_keras_loop():
    model = lth_keras.fuse_steps(compile_model(dense_model(), steps_per_execution=BLOCK))
    assert lth_keras.fused_steps.is_fused(model)
    compile_model(model, steps_per_execution=BLOCK)
    assert not lth_keras.fused_steps.is_fused(model)


def test_convolutions_under_xla_on_a_cpu_are_warned_about():
    conv = lth_keras.prune_for_lottery(conv_model())
    with pytest.warns(UserWarning, match=r"on a CPU, XLA runs the convolutions \(conv1, conv2\)"):
        lth_keras.fuse_steps(compile_model(conv, jit_compile=True, steps_per_execution=BLOCK))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none without XLA, nor for a dense model
        lth_keras.fuse_steps(compile_model(conv_model(), steps_per_execution=BLOCK))
        lth_keras.fuse_steps(compile_model(dense_model(), jit_compile=True, steps_per_execution=BLOCK))


def test_an_uncompiled_or_keras3_model_is_refused():
    with pytest.raises(ValueError, match="compile the model"):
        lth_keras.fuse_steps(dense_model())
    with pytest.raises(TypeError, match="must be a tf_keras Model"):
        lth_keras.fuse_steps("model")
    import keras  # Keras 3, beside tf_keras

    keras3_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    keras3_model.compile("adam", "mse", steps_per_execution=BLOCK)
    with pytest.raises(TypeError, match="Keras 3 already runs each call's steps in one compiled program"):
        lth_keras.fuse_steps(keras3_model)


def test_data_that_is_not_in_blocks_of_steps_per_execution_is_refused_naming_the_sizes():
    model = lth_keras.fuse_steps(compile_model(dense_model(), steps_per_execution=BLOCK))
    x, y = dense_data()
    single = pipelines.training_stream(x, y, 32)
    with pytest.raises(ValueError, match=r"steps_per_execution=4 batches .* first axes are \[32\]"):
        model.fit(single, steps_per_epoch=STEPS_PER_EPOCH, epochs=1, verbose=0)
    # An epoch that is not a whole number of blocks: Keras would shorten the last call.
    blocks = pipelines.training_stream(x, y, 32, steps_per_element=BLOCK)
    with pytest.raises(
        ValueError,
        match="steps_per_epoch must be a multiple of steps_per_execution=4; Keras asked for a call of 2",
    ):
        model.fit(blocks, steps_per_epoch=6, epochs=1, verbose=0)
    ragged = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).batch(BLOCK)  # last block short
    with pytest.raises(ValueError, match=r"first axes are \[None\]"):
        model.fit(ragged.repeat(), steps_per_epoch=STEPS_PER_EPOCH, epochs=1, verbose=0)
