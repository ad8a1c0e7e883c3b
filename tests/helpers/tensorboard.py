"""Reading what a run wrote for TensorBoard."""

import glob
import os

import tensorflow as tf

from experiments import layout


def scalars(run: str):
    """tag -> [(step, value)] of every scalar in the run's event files, in the order written."""
    found = {}
    for path in sorted(glob.glob(os.path.join(layout.tensorboard_dir(run), "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    found.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return found
