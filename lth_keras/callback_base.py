"""A callback that both tf_keras's and Keras 3's `fit` can call, importing neither.

`LotteryTicketCallback` serves models of either Keras, and a Keras 3 user on JAX or PyTorch
must not pay TensorFlow's import, which subclassing tf_keras's `Callback` would cost. Both
`fit`s call a callback through the same hooks and read the same few attributes, given here;
what differs between the frameworks lives in lth_keras.adapters.
"""

from typing import Any, Dict


class CallbackBase:
    """The hooks and attributes tf_keras's and Keras 3's CallbackLists use, doing nothing."""

    _supports_tf_logs = False  # tf_keras: give this callback logs as numbers, not tensors
    _chief_worker_only = None  # tf_keras's multi-worker filter: run on every worker
    async_safe = False  # Keras 3: call the hooks in order, on fit's own thread

    def __init__(self):
        self.model = None
        self.params: Dict[str, Any] = {}

    def set_params(self, params) -> None:
        self.params = params

    def set_model(self, model) -> None:
        self.model = model

    def _implements_train_batch_hooks(self) -> bool:
        return False

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False


def _no_op(self, *args, **kwargs):
    """A hook this callback does not use."""


for _hook in (
    "on_batch_begin",
    "on_batch_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_begin",
    "on_train_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
):
    setattr(CallbackBase, _hook, _no_op)
