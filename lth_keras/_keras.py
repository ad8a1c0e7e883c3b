"""The Keras 2 module (tf_keras) that tfmot works with, and the check that a model is one.

tfmot's pruning wrappers exist only for Keras 2. `import lth_keras` (which every import of
this module runs first) sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported anywhere
else, so `tf.keras` and `tf_keras` are the same library.
"""

import tf_keras as keras


def check_keras2_model(model, argument: str = "model") -> None:
    """Raises TypeError unless `model` is a tf_keras (Keras 2) model."""
    if isinstance(model, keras.Model):
        return
    module = type(model).__module__
    if module.startswith("keras"):
        raise TypeError(
            f"`{argument}` is a Keras 3 model ({type(model).__module__}.{type(model).__name__}); "
            "tfmot's pruning wrappers only work with Keras 2. Build the model with "
            "`lth_keras.keras` (the tf_keras package) instead of `keras`."
        )
    raise TypeError(f"`{argument}` must be a tf_keras Model, got {type(model).__name__}: {model!r}")
