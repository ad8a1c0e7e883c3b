"""LotteryTicketSchedule: a tfmot PruningSchedule that never prunes inside a step.

tfmot's wrapper asks its schedule at every training step whether to recompute the
mask. For a lottery ticket the mask changes only between rounds, which the
`LotteryTicketCallback` does itself, so this schedule always answers "no". It also
carries the layer's per-round pruning rate and scope, so a saved wrapped model
remembers how each layer is pruned.
"""

import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_schedule

from lth_keras._keras import keras
from lth_keras.rates import SCOPES
from lth_keras.validation import check_choice, check_rate


@keras.utils.register_keras_serializable(package="lth_keras")
class LotteryTicketSchedule(pruning_schedule.PruningSchedule):
    """Per-layer pruning settings for a lottery ticket; never prunes during a step.

    Args:
      pruning_rate: fraction of the layer's *surviving* weights removed per round,
        in [0, 1).
      scope: 'layerwise' ranks the layer's weights on their own; 'global' ranks them
        together with every other 'global' layer of the same rate (one threshold).

    Example:
      >>> schedule = LotteryTicketSchedule(pruning_rate=0.2)
      >>> LotteryTicketSchedule.from_config(schedule.get_config()).pruning_rate
      0.2
    """

    def __init__(self, pruning_rate: float, scope: str = "layerwise"):
        self.pruning_rate = check_rate(pruning_rate, "pruning_rate")
        self.scope = check_choice(scope, SCOPES, "scope")

    def __call__(self, step):
        # (should_prune, sparsity): tfmot only reads the sparsity when told to prune.
        return tf.constant(False), tf.constant(self.pruning_rate, dtype=tf.float32)

    def get_config(self):
        return {
            # The registered name ("lth_keras>...") lets Keras find the class on load.
            "class_name": keras.utils.get_registered_name(type(self)),
            "config": {"pruning_rate": self.pruning_rate, "scope": self.scope},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return (
            isinstance(other, LotteryTicketSchedule)
            and self.pruning_rate == other.pruning_rate
            and self.scope == other.scope
        )

    def __repr__(self):
        return f"LotteryTicketSchedule(pruning_rate={self.pruning_rate}, scope={self.scope!r})"
