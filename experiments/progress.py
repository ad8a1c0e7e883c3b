"""What a run leaves on disk as it goes, and how a re-run finds where to continue.

`RoundLogger` is the lottery callback plus files: θ₀/θ_k when captured, each round's
mask and record, TensorBoard scalars and plots, and checkpoints (model, optimizer and
the callback's progress) every `checkpoint_every` iterations and at each round's end.
`resume_point` reads them back.
"""

import glob
import json
import os
import re
import shutil
from typing import Any, Dict, List, Optional

import tensorflow as tf

import lth_keras
from experiments import layout
from lth_keras import report, storage


def round_scalars(record) -> Dict[str, float]:
    """The per-round numbers written to TensorBoard, by tag."""
    scalars = {"weights_remaining": record["weights_remaining"]}
    for layer, sparsity in record["layer_sparsity"].items():
        scalars[f"sparsity/{layer}"] = sparsity
    for name, value in record["metrics"].items():
        scalars[f"final/{name}"] = value
    for name, value in record["early_stop_metrics"].items():
        scalars[f"early_stop/{name}"] = value
    if record["early_stop_step"] is not None:
        scalars["early_stop_step"] = record["early_stop_step"]
    return scalars


def finished_rounds(run: str) -> List[Dict[str, Any]]:
    """The records of the rounds a run has finished, 0, 1, ... without gaps."""
    records = []
    for index in layout.round_indices(run):
        path = layout.metrics_file(layout.round_dir(run, index))
        if index != len(records) or not os.path.exists(path):
            break
        records.append(storage.load_json(path))
    return records


def resume_point(run: str, only_round: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """The newest checkpoint of a run (or of one round): {'path', 'state', 'round_dir'}, or None."""
    indices = layout.round_indices(run) if only_round is None else [only_round]
    for index in reversed(indices):
        directory = layout.checkpoint_dir(layout.round_dir(run, index))
        path = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
        if path:
            number = int(re.search(r"-(\d+)$", path).group(1))
            state = storage.load_json(layout.state_file(directory, number))
            return {"path": path, "state": state, "round_dir": layout.round_dir(run, index)}
    return None


def restore(model, callback, point, theta_0=None, theta_k=None) -> int:
    """Puts a run back where `point` left it; returns the Keras epoch to continue from.

    θ₀ defaults to the freshly built model's weights (right for a control, which never
    rewinds); a ticket passes the θ₀ and θ_k it saved.
    """
    callback.prepare(model)  # the optimizer's fresh state, before the checkpoint overwrites it
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(point["path"]).assert_consumed()
    callback.load_state(point["state"]["callback"], theta_0 or callback.theta_0, theta_k)
    return point["state"]["epoch"]


class RoundLogger(lth_keras.LotteryTicketCallback):
    """The lottery callback that also writes files, TensorBoard and checkpoints for `run_dir`."""

    def __init__(
        self,
        run_dir: str,
        checkpoint_every_epochs: int,
        round_offset: int = 0,
        is_ticket: bool = True,
        **kwargs,
    ):
        """`is_ticket`: save θ₀/θ_k and keep each finished round's checkpoint until the next
        round is done (the next round prunes from it); a control round needs neither."""
        super().__init__(**kwargs)
        self.run_dir = run_dir
        self.checkpoint_every_epochs = checkpoint_every_epochs
        self.is_ticket = is_ticket
        self.writer = tf.summary.create_file_writer(layout.tensorboard_dir(run_dir))
        self._epochs_done = 0

    def set_initial_epoch(self, epoch: int) -> None:
        self._epochs_done = epoch

    # Files are written after the callback's own work, so they describe a consistent state.
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._save_theta()
        for record in self.rounds:  # a round whose record was lost to a crash after its checkpoint
            path = layout.metrics_file(layout.round_dir(self.run_dir, record["round"]))
            if not os.path.exists(path):
                storage.save_json(path, record)

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_done = epoch + 1
        rounds_before = len(self.rounds)
        super().on_epoch_end(epoch, logs)
        self._save_theta()
        if len(self.rounds) == rounds_before and self._epochs_done % self.checkpoint_every_epochs == 0:
            self._checkpoint(layout.round_dir(self.run_dir, self._round + self.first_round))

    def on_round_end(self, record):
        round_directory = layout.round_dir(self.run_dir, record["round"])
        lth_keras.get_masks(self.model).save(round_directory)
        if self.is_ticket:
            self._checkpoint(round_directory)
        storage.save_json(layout.metrics_file(round_directory), record)  # marks the round done
        self._drop_old_checkpoints(record["round"])
        self._write_tensorboard(record)

    def _save_theta(self):
        if not self.is_ticket:
            return
        for name in ("theta_0", "theta_k"):
            snapshot, path = getattr(self, name), layout.theta_file(self.run_dir, name)
            if snapshot is not None and not os.path.exists(path):
                snapshot.save(path)

    def _checkpoint(self, round_directory: str):
        directory = layout.checkpoint_dir(round_directory)
        checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer)
        manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
        state = {"epoch": self._epochs_done, "callback": self.state_dict()}
        storage.save_json(layout.state_file(directory, self._epochs_done), state)
        manager.save(checkpoint_number=self._epochs_done)
        for path in glob.glob(os.path.join(directory, "state-*.json")):  # keep the states of kept checkpoints
            number = int(re.search(r"state-(\d+)\.json$", path).group(1))
            if not any(p.endswith(f"-{number}") for p in manager.checkpoints):
                os.remove(path)

    def _drop_old_checkpoints(self, finished_round: int):
        """Rounds before the one just finished (a control: up to it) no longer need checkpoints."""
        for index in layout.round_indices(self.run_dir):
            if index < finished_round or (index == finished_round and not self.is_ticket):
                shutil.rmtree(
                    layout.checkpoint_dir(layout.round_dir(self.run_dir, index)), ignore_errors=True
                )

    def _write_tensorboard(self, record):
        with self.writer.as_default():
            for tag, value in round_scalars(record).items():
                tf.summary.scalar(tag, value, step=record["round"])
            rows = report.aggregate([self.rounds])
            for metric in ("accuracy", "early_stop_step"):
                png = report.figure_png(report.plot({"this run": {"ticket": rows}}, metric))
                tf.summary.image(f"plot/{metric}", tf.image.decode_png(png)[None], step=record["round"])
        self.writer.flush()


def describe(state: Dict[str, Any]) -> str:
    """Where a checkpoint stands, for the resume message."""
    callback = state["callback"]
    return json.dumps({"round": callback["round"], "epochs_done": state["epoch"]})
