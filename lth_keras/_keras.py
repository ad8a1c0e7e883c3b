"""The Keras 2 module (tf_keras) that tfmot works with, and the check that a model is one.

tfmot's pruning wrappers exist only for Keras 2. `import lth_keras` (which every import of
this module runs first) sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported anywhere
else, so `tf.keras` and `tf_keras` are the same library.
"""

import tf_keras as keras

from lth_keras import adapters


def check_keras2_model(model, argument: str = "model") -> None:
    """Raises TypeError unless `model` is a tf_keras (Keras 2) model."""
    if not isinstance(model, keras.Model):
        raise TypeError(adapters.unsupported_model(model, argument))
