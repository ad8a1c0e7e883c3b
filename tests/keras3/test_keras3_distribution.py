"""A lottery run under `keras.distribution.DataParallel` over 2 CPU devices (JAX) ends with the
masks and θ of the same run on one device.

XLA_FLAGS must be set before JAX is imported, so each run is a subprocess of its own: one
with two host devices and DataParallel, one with the default single device.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from keras3_models import BACKEND

HERE = os.path.dirname(os.path.abspath(__file__))
TWO_DEVICES = "--xla_force_host_platform_device_count=2"

pytestmark = pytest.mark.skipif(
    BACKEND != "jax", reason="keras.distribution.DataParallel is tested on the JAX backend only"
)

# One lottery run (keras3_models.lottery_run: 3 rounds, early-stop tracking and test metrics,
# so the weight copy and evaluation run too); saves the masks, θ₀, the weights at the start
# of each round (the rewinds), the final weights and where each variable lives.
RUN = """
import json, sys
import jax, keras, numpy as np
from keras3_models import dense_data, lottery_run
import lth_keras.keras3 as lth3

output, parallel = sys.argv[1], sys.argv[2] == "parallel"
if parallel:
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
starts = []
snap = lambda *_: starts.append(lth3.take_snapshot(probe.model))
probe = keras.callbacks.LambdaCallback(on_epoch_begin=snap)
model, ticket = lottery_run(
    rounds=3,
    callbacks=[probe],
    eval_every_steps=2,
    validation_data=dense_data(32, seed=1),
    test_data=dense_data(32, seed=2),
)
arrays = {f"mask:{k}": v for k, v in lth3.get_masks(model).items()}
arrays.update({f"theta_0:{k}": v for k, v in ticket.theta_0.items()})
for index, start in enumerate(starts):
    arrays.update({f"start{index}:{k}": v for k, v in start.items()})
arrays.update({f"final:{k}": v for k, v in lth3.take_snapshot(model).items()})
np.savez(output + ".npz", **arrays)
weight, mask = lth3.masked_variables(model)["fc1/kernel"]
kept = ("round", "weights_remaining", "layer_sparsity", "steps", "early_stop_step")
records = [{k: r[k] for k in kept} for r in ticket.rounds]
with open(output + ".json", "w") as f:
    json.dump({
        "jax_devices": len(jax.devices()),
        "weight_devices": len(weight.value.sharding.device_set),
        "mask_devices": len(mask.value.sharding.device_set),
        "records": records,
    }, f)
"""


def _run(tmp_path, parallel: bool):
    name = "parallel" if parallel else "single"
    environment = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    if parallel:
        environment["XLA_FLAGS"] = TWO_DEVICES
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path / name), name],
        cwd=HERE,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    with open(tmp_path / f"{name}.json") as f:
        facts = json.load(f)
    return dict(np.load(tmp_path / f"{name}.npz")), facts


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("distribution")
    return _run(tmp_path, parallel=False), _run(tmp_path, parallel=True)


def test_the_parallel_run_really_ran_on_two_devices_and_the_single_one_on_one(runs):
    (_, single), (_, parallel) = runs
    assert single["jax_devices"] == single["weight_devices"] == single["mask_devices"] == 1
    assert parallel["jax_devices"] == parallel["weight_devices"] == parallel["mask_devices"] == 2


def test_the_same_masks_rounds_and_rewinds_bit_for_bit(runs):
    (one, single), (two, parallel) = runs
    assert parallel["records"] == single["records"]
    assert [r["weights_remaining"] for r in single["records"]][-1] < 0.5  # it did prune
    assert sorted(one) == sorted(two)
    exact = [key for key in one if not key.startswith("final:")]
    assert any(key.startswith("start2:") for key in exact)
    for key in exact:  # masks, θ₀ and the weights each round started from
        assert one[key].tobytes() == two[key].tobytes(), key


def test_the_final_weights_agree_up_to_the_order_of_the_gradient_sums(runs):
    (one, _), (two, _) = runs
    for key in one:
        if key.startswith("final:"):
            np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)
    masks = {key[len("mask:") :]: value for key, value in one.items() if key.startswith("mask:")}
    for key, mask in masks.items():  # pruned weights exactly 0 on both
        assert np.all(two[f"final:{key}"][mask == 0] == 0), key
