"""Per-step training time of a lottery-wrapped model against the same model unwrapped.

    python -m benchmarks.step_time [--models=lenet,conv6] [--steps=200] [--repeats=5]

For each model and each compile setting (plain; jit_compile; jit_compile with
steps_per_execution) both models train the same number of steps on the same generated
data, interleaved, in one process. Prints medians (min–max) and the ratio
wrapped / unwrapped, which the performance target wants at or under 1.05.
"""

import numpy as np
from absl import app, flags

import lth_keras
from benchmarks import timing
from lth_keras import datasets, models

keras = lth_keras.keras

flags.DEFINE_list("models", ["lenet", "conv6"], "Models from lth_keras.models.MODELS.")
flags.DEFINE_integer("steps", 200, "Timed training steps per measurement.")
flags.DEFINE_integer("repeats", 5, "Measurements per variant.")
flags.DEFINE_integer("batch_size", 60, "Batch size (the paper's for LeNet and Conv nets).")
FLAGS = flags.FLAGS

SETTINGS = {
    "plain": {},
    "jit": {"jit_compile": True},
    "jit+spe50": {"jit_compile": True, "steps_per_execution": 50},
}
SHAPES = {"lenet": (28, 28, 1)}


def _compiled(model, settings):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **settings,
    )
    return model


def _stepper(model, data, steps, lottery: bool):
    """A function that trains `steps` steps and returns the seconds it took (after warm-up)."""
    callbacks = [lth_keras.LotteryTicketCallback(epochs_per_round=10**6, verbose=0)] if lottery else []
    dataset = data.repeat()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=callbacks)  # trace, warm up

    def run():
        return timing.timed(lambda: model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0))

    return run


def main(argv):
    del argv
    for name in FLAGS.models:
        shape = SHAPES.get(name, models.CIFAR_SHAPE)
        rng = np.random.default_rng(0)
        x = rng.random((FLAGS.batch_size * 20,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, size=len(x))
        data = datasets.make_pipeline(x, y, FLAGS.batch_size, training=True)
        for setting, kwargs in SETTINGS.items():
            dense = _compiled(models.MODELS[name](input_shape=shape), kwargs)
            wrapped = _compiled(lth_keras.prune_for_lottery(models.MODELS[name](input_shape=shape)), kwargs)
            samples = timing.interleaved(
                {
                    "unwrapped": _stepper(dense, data, FLAGS.steps, lottery=False),
                    "lottery": _stepper(wrapped, data, FLAGS.steps, lottery=True),
                },
                FLAGS.repeats,
            )
            per_step = 1000.0 / FLAGS.steps
            print(
                f"{name:6s} {setting:10s} unwrapped {timing.summary(samples['unwrapped'], per_step, ' ms')}"
                f"  lottery {timing.summary(samples['lottery'], per_step, ' ms')}"
                f"  ratio {timing.ratio(samples['lottery'], samples['unwrapped'])}"
            )


if __name__ == "__main__":
    app.run(main)
