"""A user's own learning-rate schedule, not registered with Keras, on a Keras 3 lottery model.

The optimizer reset rebuilds the optimizer from its config, and `strip` clones the compiled
model (Keras 3 compiles a clone from the original's config): both must find the schedule's
class without `keras.saving.register_keras_serializable`.
"""

import keras
import numpy as np
from keras import ops
from keras3_models import dense_data, dense_model

import lth_keras


class Halving(keras.optimizers.schedules.LearningRateSchedule):
    """1e-2, halved every 4 steps; deliberately not registered."""

    def __call__(self, step):
        return 1e-2 * ops.power(0.5, ops.floor(ops.cast(step, "float32") / 4.0))

    def get_config(self):
        return {}


def test_rounds_reset_the_optimizer_and_strip_work_with_an_unregistered_schedule():
    keras.utils.set_random_seed(0)
    model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
    model.compile(
        optimizer=keras.optimizers.Adam(Halving()),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    x, y = dense_data()
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, callbacks=[ticket], verbose=0)
    assert [r["round"] for r in ticket.rounds] == [0, 1, 2]
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 4  # reset at round 2's start

    plain = lth_keras.strip(model)
    np.testing.assert_allclose(
        ops.convert_to_numpy(plain(x[:8])), ops.convert_to_numpy(model(x[:8])), rtol=1e-5, atol=1e-6
    )
