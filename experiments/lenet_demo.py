"""A short LeNet-300-100 lottery run on Fashion-MNIST, offline; prints the round table.

    python -m experiments.lenet_demo --rounds=5 --epochs_per_round=1

Paper settings (Frankle & Carbin 2019): Adam 1.2e-3, batch 60, fc layers pruned 20%
per round, the output layer 10%, 5,000 training examples held out for validation.
"""

from absl import app, flags

import lth_keras
from lth_keras import datasets, models

keras = lth_keras.keras

flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Directory with the four IDX files.")
flags.DEFINE_integer("rounds", 5, "Rounds of training; the last is not pruned after.")
flags.DEFINE_integer("epochs_per_round", 1, "Epochs of training per round.")
flags.DEFINE_integer("batch_size", 60, "Batch size.")
flags.DEFINE_float("learning_rate", 1.2e-3, "Adam learning rate.")
flags.DEFINE_integer("eval_every_steps", 100, "Validation interval for the early-stop step.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the validation split.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    (x, y), (x_test, y_test) = datasets.load_idx_dataset(FLAGS.data_dir)
    (x, y), (x_val, y_val) = datasets.hold_out(x, y, 5000, seed=FLAGS.seed)

    model = lth_keras.prune_for_lottery(
        models.lenet_300_100(x.shape[1:], seed=FLAGS.seed), pruning_rate=0.2, output_pruning_rate=0.1
    )
    model.compile(
        optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ticket = lth_keras.LotteryTicketCallback(
        epochs_per_round=FLAGS.epochs_per_round,
        eval_every_steps=FLAGS.eval_every_steps,
        validation_data=(x_val, y_val),
        test_data=(x_test, y_test),
    )
    model.fit(
        x,
        y,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.rounds * FLAGS.epochs_per_round,
        callbacks=[ticket],
        verbose=0,
    )
    print(lth_keras.format_rounds_table(ticket.rounds, accuracy_key="test_accuracy"))


if __name__ == "__main__":
    app.run(main)
