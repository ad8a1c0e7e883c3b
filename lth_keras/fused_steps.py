"""Blocks of training steps run as one compiled program, without Keras's per-step dispatch.

With `steps_per_execution=n`, Keras's loop still fetches each batch from the input
iterator and launches the compiled step once per step. On a small model that dispatch is a
large share of a step: LeNet-300-100 under XLA on a 2-core CPU trains 100 steps at about
0.9 ms a step through Keras's loop and about 0.65 ms when the 100 steps are one XLA
program (benchmarks/round_speed.py measures it). `fuse_steps` makes `model.fit` do the
latter: each call takes one element of the dataset holding n batches stacked, and runs
`model.train_step` on each in a loop compiled as a whole. The steps themselves, the
optimizer's updates, the metrics and the callbacks between calls are those of Keras's loop.
"""

import tensorflow as tf

from lth_keras import adapters, notices
from lth_keras._keras import check_keras2_model
from lth_keras.keras_internals import private_attribute
from lth_keras.wrapping import flat_layers, unwrapped

_BLOCK_STEPS = "_lth_block_steps"  # on a train function made here: the steps of each block


def fuse_steps(model):
    """Makes `model.fit` run each block of `steps_per_execution` steps as one program.

    Call after `model.compile(..., steps_per_execution=n)` (with `jit_compile=True` the
    block is one XLA program); compiling again undoes it. `fit` must then be given a
    dataset whose elements stack n consecutive batches along a new first axis, e.g.
    `dataset.batch(n, drop_remainder=True)` or `lth_keras.pipelines.training_stream(...,
    steps_per_element=n)`, and a `steps_per_epoch` that is a multiple of n. Works under
    the default strategy or any strategy with one replica; several replicas need Keras's
    own loop, which splits each batch between them.

    Keras 3 needs no such step: compiled with `steps_per_execution=n`, it runs n steps per
    call (in one XLA program on JAX, in one graph call on TensorFlow); a Keras 3 model is
    refused, saying so.

    Returns the model.
    """
    if adapters.framework_of(model) == "keras":
        raise TypeError(
            "fuse_steps is for tf_keras models: Keras 3 already runs each call's steps in one "
            "compiled program; compile the Keras 3 model with steps_per_execution=n (and "
            "jit_compile=True on TensorFlow) instead"
        )
    check_keras2_model(model)
    if not private_attribute(model, "_is_compiled", "whether a model is compiled") or model.optimizer is None:
        raise ValueError("compile the model (with its steps_per_execution) before fuse_steps(model)")
    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync != 1:
        raise ValueError(
            f"fuse_steps needs a single replica; the model's {type(strategy).__name__} has "
            f"{strategy.num_replicas_in_sync}: train it with Keras's own loop"
        )
    _warn_if_convolutions_on_cpu(model)
    block_steps = int(model._steps_per_execution.numpy())
    run_block = tf.function(_block_runner(model), jit_compile=bool(model._jit_compile), autograph=False)

    @tf.function(autograph=False)
    def execute(iterator):
        block = next(iterator)
        logs = strategy.run(run_block, args=(block,))
        model._train_counter.assign_add(_block_length(block))  # TensorBoard's batch step
        return tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0], logs)

    def train_function(iterator):
        steps_this_call = int(model._steps_per_execution.numpy())
        if steps_this_call != block_steps:
            model._steps_per_execution.assign(block_steps)  # Keras would leave it shortened
        _check_blocks(iterator.element_spec, block_steps, steps_this_call)
        return execute(iterator)

    setattr(train_function, _BLOCK_STEPS, block_steps)
    train_function.experimental_get_tracing_count = execute.experimental_get_tracing_count  # as tf.function
    model.train_function = train_function
    return model


def is_fused(model) -> bool:
    """True while `model.fit` runs blocks of steps made by `fuse_steps`."""
    return _block_steps(model) is not None


def steps_per_element(model) -> int:
    """Batches each element of the model's training data must stack: its block if fused, else 1."""
    return _block_steps(model) or 1


def _block_steps(model):
    return getattr(getattr(model, "train_function", None), _BLOCK_STEPS, None)


def _block_runner(model):
    def run_block(block):
        # The first step runs outside the loop: it creates the metrics' and optimizer's
        # variables on the first trace and gives the loop its logs' structure.
        logs = model.train_step(_batch(block, 0))

        def step(index, _):
            return index + 1, model.train_step(_batch(block, index))

        _, logs = tf.while_loop(lambda index, _: index < _block_length(block), step, (tf.constant(1), logs))
        return logs

    return run_block


def _warn_if_convolutions_on_cpu(model) -> None:
    accelerated = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    if not model._jit_compile or accelerated:
        return
    layers = [unwrapped(layer) for layer in flat_layers(model)]
    convolutions = [layer.name for layer in layers if "Conv" in type(layer).__name__]
    if convolutions:
        notices.warn(
            f"fuse_steps: on a CPU, XLA runs the convolutions ({', '.join(convolutions)}) of a loop of "
            "steps far slower than one step at a time (Conv-2: 11 s a step against 0.13 s on 2 cores); "
            "fuse only dense models there, or compile without jit_compile"
        )


def _batch(block, index):
    return tf.nest.map_structure(lambda tensor: tensor[index], block)


def _block_length(block) -> int:
    return tf.nest.flatten(block)[0].shape[0]


def _check_blocks(element_spec, block_steps: int, steps_this_call: int) -> None:
    """Raises ValueError unless this call trains one whole block of the data."""
    if steps_this_call != block_steps:  # Keras shortens the last call of an uneven epoch
        raise ValueError(
            f"fuse_steps: steps_per_epoch must be a multiple of steps_per_execution={block_steps}; "
            f"Keras asked for a call of {steps_this_call} steps"
        )
    lengths = {spec.shape[0] if spec.shape.rank else None for spec in tf.nest.flatten(element_spec)}
    if lengths != {block_steps}:
        raise ValueError(
            f"fuse_steps: each dataset element must stack steps_per_execution={block_steps} "
            f"batches along its first axis, but its first axes are {sorted(lengths, key=str)}: feed "
            f"dataset.batch({block_steps}, drop_remainder=True)"
        )
