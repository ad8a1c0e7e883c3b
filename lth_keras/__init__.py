"""lth_keras: the Lottery Ticket Hypothesis as a Keras callback on tfmot's pruning wrappers.

This package is the plugin core. The paper's kit (networks, offline datasets, the report
and its plots) is `lth_keras.paper`, which the core never imports.

Example:
  import lth_keras
  keras = lth_keras.keras
  model = lth_keras.prune_for_lottery(model, pruning_rate=0.2)
  model.compile(optimizer=keras.optimizers.Adam(1.2e-3), loss=..., metrics=["accuracy"])
  ticket = lth_keras.LotteryTicketCallback(epochs_per_round=5)
  model.fit(x, y, epochs=5 * 10, validation_data=(xv, yv), callbacks=[ticket])
"""

from lth_keras._keras import keras
from lth_keras.callback import LotteryTicketCallback, format_round
from lth_keras.controls import random_prune, reinit
from lth_keras.fused_steps import fuse_steps
from lth_keras.invariants import InvariantError
from lth_keras.notices import LotteryWarning
from lth_keras.masks import Masks, magnitude_prune, random_masks_like
from lth_keras.model_state import (
    WeightSnapshot,
    get_effective_weights,
    get_masks,
    set_masks,
    take_snapshot,
)
from lth_keras.schedule import LotteryTicketSchedule
from lth_keras.tickets import Ticket, apply_ticket, load_ticket, save_ticket
from lth_keras.wrapping import custom_objects, load_model, prune_for_lottery, strip

__all__ = [
    "keras",
    "InvariantError",
    "LotteryTicketCallback",
    "LotteryTicketSchedule",
    "LotteryWarning",
    "Masks",
    "Ticket",
    "WeightSnapshot",
    "apply_ticket",
    "custom_objects",
    "format_round",
    "fuse_steps",
    "get_effective_weights",
    "get_masks",
    "load_model",
    "load_ticket",
    "magnitude_prune",
    "prune_for_lottery",
    "random_masks_like",
    "random_prune",
    "reinit",
    "save_ticket",
    "set_masks",
    "strip",
    "take_snapshot",
]
