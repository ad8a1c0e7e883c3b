"""The Keras a run trains with (`--backend`), chosen before any Keras 3 is imported.

tf_keras (Keras 2) is what tfmot's wrappers prune; Keras 3 runs on the backend named in
KERAS_BACKEND when `keras` is first imported, once per process. The command line selects it
(`select`) before anything imports Keras; `keras_of` gives a run its Keras module and refuses
a process whose Keras 3 already runs on another backend.
"""

import json
import os
import sys

from experiments import config as config_lib


def is_keras3(config) -> bool:
    return config.backend in config_lib.KERAS3_BACKENDS


def select(backend: str) -> None:
    """Makes Keras 3, when it is first imported, run on `backend` (nothing for tf_keras)."""
    if backend in config_lib.KERAS3_BACKENDS:
        os.environ["KERAS_BACKEND"] = backend


def keras_of(config):
    """The Keras module `config.backend` names; ValueError if Keras 3 here runs another backend."""
    if not is_keras3(config):
        from lth_keras._keras import keras as tf_keras

        return tf_keras
    if "keras" not in sys.modules:
        select(config.backend)
    import keras

    running = keras.backend.backend()
    if running != config.backend:
        raise ValueError(
            f"--backend={config.backend}: Keras 3 in this process already runs on {running} "
            "(Keras reads KERAS_BACKEND once, when it is first imported); run the command in a "
            "new process"
        )
    return keras


def set_random_seed(config, seed: int) -> None:
    """Seeds Python's, NumPy's and the run's Keras's (and its backend's) random numbers."""
    keras_of(config).utils.set_random_seed(seed)


def make_deterministic(config) -> None:
    """Deterministic kernels for --deterministic, where the backend has a switch for them:
    TensorFlow's op determinism (tf_keras, tensorflow), torch's deterministic algorithms. JAX
    on the CPU computes the same bits run after run without one."""
    if config.backend in ("tf_keras", "tensorflow"):
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif config.backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)


def select_stored(experiment: str) -> None:
    """Selects the backend the stored config.json of `experiment` names, before anything imports
    Keras 3 (a command that reads a run, e.g. experiments.export). A missing or unreadable file
    selects nothing: the command's own checks refuse it, naming the file."""
    from experiments import layout

    try:
        with open(layout.config_file(experiment)) as f:
            select(json.load(f).get("backend", "tf_keras"))
    except (OSError, ValueError, AttributeError):
        pass
