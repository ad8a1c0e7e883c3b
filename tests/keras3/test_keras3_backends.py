"""A model built on one backend and trained on another.

Across processes that is what `model.save` is for: a lottery model saved on one backend loads
on another with its masks, rates and weights, and trains there. Within one process it can only
happen through `keras.config.set_backend`, which imports Keras again: models made before the
switch, and lth_keras.keras3 imported before it, belong to the old Keras. lth_keras refuses
them with an error naming both backends instead of failing deep inside Keras.

Each run on another backend is a subprocess (the switch reloads Keras for the whole process).
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from keras3_models import BACKEND, compiled, dense_data, fit

import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.notices import LotteryWarning

HERE = os.path.dirname(os.path.abspath(__file__))

# What each backend needs installed (Keras 3's numpy backend imports scipy).
NEEDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "scipy"}
OTHERS = [name for name, module in NEEDS.items() if name != BACKEND and importlib.util.find_spec(module)]
OTHER = OTHERS[0] if OTHERS else None

needs_another_backend = pytest.mark.skipif(
    OTHER is None,
    reason=f"no backend but {BACKEND} is installed here, so no model can come from another one",
)


def _python(code, *args, backend=BACKEND):
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=HERE,
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


SAVE = """
import sys
import numpy as np
import lth_keras
import lth_keras.keras3 as lth3
from lth_keras.notices import LotteryWarning
from keras3_models import dense_model, next_masks
model = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
lth_keras.set_masks(model, next_masks(model))
model.save(sys.argv[1])
np.savez(sys.argv[2], **{"mask:" + k: v for k, v in lth3.get_masks(model).items()},
         **{"weight:" + k: v for k, v in lth3.take_snapshot(model).items()})
"""


@needs_another_backend
def test_a_lottery_model_saved_on_another_backend_loads_and_trains_here(tmp_path):
    path, arrays = str(tmp_path / "model.keras"), str(tmp_path / "saved.npz")
    _python(SAVE, path, arrays, backend=OTHER)
    saved = dict(np.load(arrays))
    model = lth3.load_model(path)
    masks = lth3.get_masks(model)
    for key, mask in masks.items():
        assert mask.tobytes() == saved[f"mask:{key}"].tobytes(), key
        assert 0 < mask.sum() < mask.size, key
    for key, weight in lth3.take_snapshot(model).items():
        assert weight.tobytes() == saved[f"weight:{key}"].tobytes(), key
    before = lth3.get_stored_weights(model)
    fit(compiled(model), dense_data())
    for key, weight in lth3.get_stored_weights(model).items():
        assert np.all(weight[masks[key] == 0] == 0), key
        assert not np.array_equal(weight, before[key]), key
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, verbose=0)
    compiled(model)  # a fresh optimizer: the callback starts from θ₀
    x, y = dense_data()
    with pytest.warns(LotteryWarning, match="is 52.14% unpruned: this new LotteryTicketCallback takes"):
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[ticket], verbose=0)
    assert ticket.rounds[1]["weights_remaining"] < ticket.rounds[0]["weights_remaining"]


SWITCH = """
import json, sys
import keras
import numpy as np
import lth_keras
from keras3_models import dense_model

old = dense_model()
pruned = lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.5)
pruned.compile(optimizer="adam", loss="mse")
keras.config.set_backend(sys.argv[1])
import keras  # the reloaded Keras

new = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="new")
x = np.zeros((16, 20), "float32")
calls = {
    "prepare a model made before": lambda: lth_keras.prune_for_lottery(old),
    "read the masks of one": lambda: lth_keras.get_masks(pruned),
    "train one with the callback": lambda: pruned.fit(
        x, x[:, :4], epochs=1, verbose=0, callbacks=[lth_keras.LotteryTicketCallback(epochs_per_round=1)]
    ),
    "prepare a model made after": lambda: lth_keras.prune_for_lottery(new),
}
errors = {}
for what, call in calls.items():
    try:
        call()
        errors[what] = None
    except Exception as error:
        errors[what] = [type(error).__name__, str(error)]
print(json.dumps(errors))
"""


@needs_another_backend
def test_a_model_from_before_keras_config_set_backend_is_refused_naming_both_backends():
    errors = json.loads(_python(SWITCH, OTHER).strip().splitlines()[-1])
    switch = (
        f"lth_keras.keras3 was imported with Keras on {BACKEND}, but Keras now runs on {OTHER}: "
        "keras.config.set_backend reloads Keras"
    )
    for what in ("prepare a model made before", "read the masks of one", "train one with the callback"):
        assert errors[what] is not None, what
        kind, message = errors[what]
        assert kind == "ValueError", (what, message)
        # Named: the model, or the layer that found it when the train step was traced first.
        assert f"was built on the {BACKEND} backend and {switch}" in message, (what, message)
        assert "('tiny_dense')" in message or "('lottery_fc1')" in message, (what, message)
        assert "set KERAS_BACKEND before Python starts" in message
    kind, message = errors["prepare a model made after"]
    assert kind == "ValueError"
    assert f"('new') was built on the {OTHER} backend and {switch}" in message
