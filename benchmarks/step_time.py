"""Per-step training time of a lottery-wrapped model against the same model unwrapped.

    python -m benchmarks.step_time [--models=lenet,conv6] [--steps=200] [--repeats=7]

For each model and each compile setting (plain; jit_compile; jit_compile with
steps_per_execution; the same with each call's steps fused into one XLA program by
`lth_keras.fuse_steps`, fed blocks of batches) three models train the same number of
steps on the same batches, interleaved, in one process: the plain model ("unwrapped"), the model from
`lth_keras.prune_for_lottery` with the lottery callback attached ("lottery"), and, for
reference, the model wrapped with tfmot's own `prune_low_magnitude` ("tfmot"). The
batches are cached in memory so the input pipeline is not what is timed. Prints medians
(min–max) per step and the ratios to the unwrapped model; the performance target wants
lottery / unwrapped at or under 1.05.
"""

import numpy as np
from absl import app, flags
from tensorflow_model_optimization.python.core.sparsity.keras import prune

import lth_keras
from benchmarks import timing
from lth_keras import pipelines
from lth_keras.paper import models
from lth_keras.wrapping import enable_training

keras = lth_keras.keras

flags.DEFINE_list("models", ["lenet", "conv6"], "Models from lth_keras.paper.models.MODELS.")
flags.DEFINE_integer("steps", 200, "Timed training steps per measurement (conv6: a tenth).")
flags.DEFINE_integer("repeats", 7, "Measurements per variant.")
flags.DEFINE_integer("batch_size", 60, "Batch size (the paper's for LeNet and Conv nets).")
flags.DEFINE_bool(
    "fused_convolutions",
    False,
    "Also time conv nets with fused steps (skipped by default: XLA's loop of conv steps is slow on a CPU).",
)
FLAGS = flags.FLAGS

SETTINGS = {
    "plain": {},
    "jit": {"jit_compile": True},
    "jit+spe50": {"jit_compile": True, "steps_per_execution": 50},
    "jit+spe50+fused": {"jit_compile": True, "steps_per_execution": 50, "fused": True},
}
SHAPES = {"lenet": (28, 28, 1)}
SLOW_MODELS = {"conv2", "conv4", "conv6", "vgg16", "vgg19", "resnet18", "resnet20"}
TARGET = 1.05


def _tfmot_wrapped(model):
    """The same model under tfmot's own wrapper and our schedule: what we improve on."""
    schedule = lth_keras.LotteryTicketSchedule(pruning_rate=0.2)
    wrapped = prune.prune_low_magnitude(model, pruning_schedule=schedule)
    enable_training(wrapped)
    return wrapped


BUILDERS = {
    "unwrapped": lambda model: model,
    "lottery": lth_keras.prune_for_lottery,
    "tfmot": _tfmot_wrapped,
}


def _compiled(model, settings):
    settings = dict(settings)
    fused = settings.pop("fused", False)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **settings,
    )
    return lth_keras.fuse_steps(model) if fused else model


def _stepper(model, data, steps, callbacks):
    """A function that trains `steps` steps and returns the seconds it took (after warm-up)."""
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=callbacks)  # trace, warm up

    def run():
        return timing.timed_fit(model, data, callbacks, steps_per_epoch=steps, epochs=1)

    return run


def measure(name: str, settings: dict, steps: int, repeats: int, batch_size: int):
    """Seconds per measurement of each variant of model `name`, interleaved."""
    shape = SHAPES.get(name, models.CIFAR_SHAPE)
    rng = np.random.default_rng(0)
    x = rng.random((batch_size * 10,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, size=len(x))
    data = pipelines.make_pipeline(x, y, batch_size, training=True).cache().repeat()
    if settings.get("fused"):
        data = data.batch(settings["steps_per_execution"], drop_remainder=True).take(10).cache().repeat()
    steppers = {}
    for variant, wrap in BUILDERS.items():
        model = _compiled(wrap(models.MODELS[name](input_shape=shape, seed=0)), settings)
        callbacks = []
        if variant == "lottery":  # one round longer than the benchmark: the callback's per-step cost
            callbacks = [lth_keras.LotteryTicketCallback(epochs_per_round=10**6, verbose=0)]
        steppers[variant] = _stepper(model, data, steps, callbacks)
    return timing.interleaved(steppers, repeats)


def main(argv):
    del argv
    for name in FLAGS.models:
        steps = max(FLAGS.steps // 10, 5) if name in SLOW_MODELS else FLAGS.steps
        for setting, kwargs in SETTINGS.items():
            if kwargs.get("fused") and name in SLOW_MODELS and not FLAGS.fused_convolutions:
                print(f"{name:6s} {setting}: skipped (--fused_convolutions times it)", flush=True)
                continue
            if "steps_per_execution" in kwargs:
                kwargs = dict(kwargs, steps_per_execution=min(kwargs["steps_per_execution"], steps))
            samples = measure(name, kwargs, steps, FLAGS.repeats, FLAGS.batch_size)
            per_step = 1000.0 / steps
            ratio = timing.paired_median_ratio(samples["lottery"], samples["unwrapped"])
            print(
                f"{name:6s} {setting:10s} ms per step:"
                f" unwrapped {timing.summary(samples['unwrapped'], per_step)}"
                f"  lottery {timing.summary(samples['lottery'], per_step)}"
                f"  tfmot {timing.summary(samples['tfmot'], per_step)}",
                flush=True,
            )
            print(
                f"{'':17s} lottery/unwrapped {timing.ratio(samples['lottery'], samples['unwrapped'])}"
                f" {'≤' if ratio <= TARGET else '>'} {TARGET};"
                f" tfmot/unwrapped {timing.ratio(samples['tfmot'], samples['unwrapped'])}",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
