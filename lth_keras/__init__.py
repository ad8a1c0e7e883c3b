"""lth_keras: the Lottery Ticket Hypothesis as a Keras callback on tfmot's pruning wrappers.

This package is the plugin core. The paper's kit (networks, offline datasets, the report
and its plots) is `lth_keras.paper`, which the core never imports. `import lth_keras` is
light: each public name imports its module (and TensorFlow) when first used.

Example:
  import lth_keras
  keras = lth_keras.keras
  model = lth_keras.prune_for_lottery(model, pruning_rate=0.2)
  model.compile(optimizer=keras.optimizers.Adam(1.2e-3), loss=..., metrics=["accuracy"])
  ticket = lth_keras.LotteryTicketCallback(epochs_per_round=5)
  model.fit(x, y, epochs=5 * 10, validation_data=(xv, yv), callbacks=[ticket])
"""

import importlib
import os

# tfmot's wrappers need Keras 2: make `tf.keras` tf_keras before TensorFlow is imported
# anywhere (lth_keras._keras says why), even if the user imports TensorFlow next.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Each public name and the module that defines it. They are imported on first use, so
# `import lth_keras` itself loads no TensorFlow (PEP 562 module __getattr__).
_EXPORTS = {
    "keras": "lth_keras._keras",
    "LotteryTicketCallback": "lth_keras.callback",
    "format_round": "lth_keras.callback",
    "random_prune": "lth_keras.controls",
    "reinit": "lth_keras.controls",
    "reinit_keep_signs": "lth_keras.controls",
    "remove_ticket": "lth_keras.controls",
    "fuse_steps": "lth_keras.fused_steps",
    "export": "lth_keras.exporting",
    "InvariantError": "lth_keras.invariants",
    "KerasInternalsChanged": "lth_keras.keras_internals",
    "LotteryWarning": "lth_keras.notices",
    "Masks": "lth_keras.masks",
    "checkpoint_random_state": "lth_keras.random_state",
    "magnitude_prune": "lth_keras.masks",
    "random_masks_like": "lth_keras.masks",
    "WeightSnapshot": "lth_keras.snapshots",
    "get_effective_weights": "lth_keras.dispatch",
    "get_masks": "lth_keras.dispatch",
    "set_masks": "lth_keras.dispatch",
    "take_snapshot": "lth_keras.dispatch",
    "LotteryTicketSchedule": "lth_keras.schedule",
    "Ticket": "lth_keras.tickets",
    "apply_ticket": "lth_keras.tickets",
    "load_ticket": "lth_keras.tickets",
    "save_ticket": "lth_keras.tickets",
    "custom_objects": "lth_keras.wrapping",
    "load_model": "lth_keras.wrapping",
    "prune_for_lottery": "lth_keras.dispatch",
    "strip": "lth_keras.dispatch",
}


def __getattr__(name):
    """Imports a public name's module on first use; `lth_keras.<module>` works as well."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = list(_EXPORTS)
