"""The other callbacks of the same `model.fit`: those a lottery run refuses or warns about.

Keras gives a callback no handle on the others in its list, but the `CallbackList` that
calls a hook is on the call stack, so `callbacks_beside` finds it there. A loop that
drives the hooks by hand has no `CallbackList`; then nothing is found or checked. Both
functions take the `callbacks` module of the model's Keras (tf_keras's or Keras 3's): the
adapters pass theirs.
"""

import sys
from typing import List

from lth_keras import notices

EARLY_STOP_ADVICE = (
    "LotteryTicketCallback records each round's early-stop step itself, the paper's step of minimum "
    "validation loss (ticket.rounds[i]['early_stop_step']): give it eval_every_steps=N and "
    "validation_data=..., or pass fit(validation_data=...) for a per-epoch check, and leave "
    "EarlyStopping out"
)


def callbacks_beside(callback, callbacks) -> List:
    """The other callbacks of the `callbacks.CallbackList` now calling one of `callback`'s hooks."""
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, callbacks.CallbackList) and any(c is callback for c in owner.callbacks):
            return [c for c in owner.callbacks if c is not callback]
        frame = frame.f_back
    return []


def check_callbacks_beside(others, callbacks) -> None:
    """Refuses callbacks that would make the lottery run wrong; warns about those that change it.

    Raises ValueError for EarlyStopping: it ends the whole run at the first rewind, and
    with `restore_best_weights` restores an earlier round's masks. Warns for callbacks
    that set the learning rate, which the optimizer reset between rounds does not undo.
    """
    for other in others:
        name = type(other).__name__
        if isinstance(other, callbacks.EarlyStopping):
            restores = (
                " and restore_best_weights=True would put back the weights and masks of an earlier round"
                if other.restore_best_weights
                else ""
            )
            raise ValueError(
                f"{name}(monitor={other.monitor!r}) cannot run beside LotteryTicketCallback: it would end "
                f"the whole lottery run, not a round, since each rewind makes {other.monitor} jump when a "
                f"round starts{restores}. {EARLY_STOP_ADVICE}"
            )
        if isinstance(other, (callbacks.ReduceLROnPlateau, callbacks.LearningRateScheduler)):
            notices.warn(
                f"{name} sets the optimizer's learning rate, and the value it set carries over into the "
                "next round (the optimizer reset between rounds puts back slots and the step counter, "
                "not the learning rate), so rounds do not replay the same schedule as the paper's do. "
                "For a replayed schedule give the optimizer a "
                "keras.optimizers.schedules.LearningRateSchedule instead"
            )


def is_progress_bar(callback, callbacks) -> bool:
    """True for Keras's own progress bar (`callbacks.ProgbarLogger`)."""
    return isinstance(callback, callbacks.ProgbarLogger)
