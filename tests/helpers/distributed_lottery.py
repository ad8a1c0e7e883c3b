"""Runs a tiny lottery under a tf.distribute strategy and dumps what each replica holds.

    python -m tests.helpers.distributed_lottery mirrored OUT.npz
    TF_CONFIG=... python -m tests.helpers.distributed_lottery multi_worker OUT.npz

For every model variable and every replica component it writes the value, so the test
can check that masks, θ₀ and weights are identical across replicas and workers.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lth_keras  # noqa: E402

keras = lth_keras.keras


def main(kind: str, out_path: str) -> None:
    if kind == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 12)).astype(np.float32)
    y = x[:, :3].argmax(axis=1)
    with strategy.scope():
        inputs = keras.Input((12,))
        h = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
        outputs = keras.layers.Dense(3, name="out")(h)
        model = lth_keras.prune_for_lottery(keras.Model(inputs, outputs), pruning_rate=0.5)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    try:  # several replicas split each batch: fused blocks of steps must be refused
        lth_keras.fuse_steps(model)
        fuse_refusal = "fuse_steps accepted the model"
    except ValueError as error:
        fuse_refusal = str(error)
    ticket = lth_keras.LotteryTicketCallback(epochs_per_round=1, rewind_step=2, verbose=0)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    model.fit(data, epochs=3, callbacks=[ticket], verbose=0)

    arrays = {"replicas": np.array(strategy.num_replicas_in_sync), "fuse_refusal": np.array(fuse_refusal)}
    for key, mask in lth_keras.get_masks(model).items():
        arrays[f"mask/{key}"] = mask
    for name, value in ticket.theta_k.items():
        arrays[f"theta_k/{name}"] = value
    for variable in model.weights:
        components = getattr(variable, "values", None) or (variable,)
        for index, component in enumerate(components):
            arrays[f"var/{variable.name}/{index}"] = component.numpy()
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
