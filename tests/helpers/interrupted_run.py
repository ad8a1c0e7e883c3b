"""Runs an experiment suite that SIGKILLs itself at a chosen point, as a crash would.

python -m tests.helpers.interrupted_run epoch N SUITE [flags...]
    killed right after the N-th Keras epoch ended (and its checkpoint, if due, was written)
python -m tests.helpers.interrupted_run checkpoint N SUITE [flags...]
    killed inside the N-th checkpoint write: progress file written, checkpoint not
"""

import importlib
import os
import signal
import sys

from experiments import backend


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def main():
    when, count, suite = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    for arg in sys.argv[4:]:  # Keras 3's backend, before the imports below import Keras
        if arg.startswith("--backend="):
            backend.select(arg.partition("=")[2])
    import tensorflow as tf

    from experiments import progress, runner

    if when == "epoch":
        original = progress.RoundLogger.on_epoch_end

        def on_epoch_end(self, epoch, logs=None):
            original(self, epoch, logs)
            if epoch + 1 == count:
                _die()

        progress.RoundLogger.on_epoch_end = on_epoch_end
    elif when == "checkpoint":
        original_save = tf.train.CheckpointManager.save
        calls = []

        def save(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == count:
                _die()
            return original_save(self, *args, **kwargs)

        tf.train.CheckpointManager.save = save
    else:
        raise SystemExit(f"unknown kill point {when!r}")
    sys.argv = [sys.argv[0]] + sys.argv[4:]
    module = importlib.import_module(f"experiments.{suite}")
    getattr(module, "main", runner.main)(module.DEFAULTS)  # a study has a command line of its own


if __name__ == "__main__":
    main()
