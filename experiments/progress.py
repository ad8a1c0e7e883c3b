"""What a run leaves on disk as it goes, and how a re-run finds where to continue.

`RoundLogger` is the lottery callback plus files: θ₀/θ_k when captured, each round's
mask and record, TensorBoard scalars and plots (per round, and per validation interval
against the run's step), and checkpoints (model, optimizer and the callback's progress)
every `checkpoint_every` iterations and at each round's end. On a terminal it also draws
a progress bar of the round (experiments/progress_bar.py).
`resume_point` reads them back; a stored file that cannot be used stops the run with
`RunFileError` naming it. A run stops early, with a checkpoint, when `STOP` is requested
(SIGINT/SIGTERM), and without one when training diverges (`diverged.json`).
"""

import errno
import glob
import json
import os
import re
import shutil
import time
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary

import lth_keras
from experiments import checkpoints, integrity, layout, progress_bar
from experiments.manifest import Manifest
from lth_keras import storage, tickets
from lth_keras.paper import report

# Where a stored file fails: the error and its advice (kept here for callers of progress).
START_ANEW, redo_from, RunFileError, reading = (
    integrity.START_ANEW,
    integrity.redo_from,
    integrity.RunFileError,
    integrity.reading,
)


class TrainingDiverged(RuntimeError):
    """Training produced a NaN or inf; the run keeps its finished rounds."""


class Interrupted(Exception):
    """The run stopped at a checkpoint because a signal asked it to."""

    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number


class StopRequest:
    """Set by a signal handler; RoundLogger checkpoints and stops at the next interval's end."""

    def __init__(self):
        self.signal_number: Optional[int] = None

    def request(self, signal_number: int) -> None:
        self.signal_number = signal_number

    @property
    def requested(self) -> bool:
        return self.signal_number is not None


STOP = StopRequest()

# TensorBoard's plot images take about 0.25 s of matplotlib a round (LeNet's 3,000-iteration
# rounds train in 2 s here), so they are drawn at most once a minute per run, and when a
# fit ends after the run's last round or stopped early.
PLOT_EVERY_SECONDS = 60.0
_LAST_PLOTTED: Dict[str, float] = {}  # run directory -> when this process last drew its plots


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
    # Records written before these fields existed have none of them.
    for name, value in record.get("supermask_metrics", {}).items():
        scalars[f"supermask/{name}"] = value
    for layer, count in record.get("pruned", {}).items():
        scalars[f"pruned/{layer}"] = count
    if record.get("sign_stability") is not None:
        scalars["sign_stability"] = record["sign_stability"]
    return scalars


INTERVAL_TAGS = "interval/"  # per-interval scalars: interval/loss, interval/val_accuracy, ..., interval/round


def interval_scalars(logs, round_index: int) -> Dict[str, float]:
    """The per-interval numbers written to TensorBoard, by tag: Keras's logs and the round."""
    scalars = {f"{INTERVAL_TAGS}{name}": float(value) for name, value in logs.items() if np.ndim(value) == 0}
    scalars[f"{INTERVAL_TAGS}round"] = round_index
    return scalars


def serialized_scalars(scalars: Dict[str, float]) -> bytes:
    """Scalars as one Summary: written at once, about 5x cheaper than one summary op per tag."""
    summary = summary_pb2.Summary()
    for tag, value in scalars.items():
        summary.value.extend(scalar_summary.scalar_pb(tag, value).value)
    return summary.SerializeToString()


def last_interval_step(tensorboard_dir: str) -> int:
    """The highest step of the per-interval scalars already in `tensorboard_dir`'s event files (0 if none).

    A run killed after its last checkpoint redoes the intervals since then; their scalars may
    already be on disk, and writing them again would draw each of those steps twice.
    """
    last = 0
    for path in glob.glob(os.path.join(tensorboard_dir, "events.out.tfevents.*")):
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if any(value.tag.startswith(INTERVAL_TAGS) for value in event.summary.value):
                    last = max(last, event.step)
        except tf.errors.DataLossError:  # a record cut short by the kill: what precedes it counts
            pass
    return last


def finished_rounds(run: str, stop_before: Optional[int] = None) -> List[Dict[str, Any]]:
    """The records of the rounds a run has finished, 0, 1, ... without gaps (and before
    round `stop_before`, if given)."""
    records = []
    for index in layout.round_indices(run):
        if stop_before is not None and index >= stop_before:
            break
        round_directory = layout.round_dir(run, index)
        path = layout.record_file(round_directory)
        if index != len(records) or not os.path.exists(path):
            break
        with reading(path, redo_from(round_directory)):
            rounds = tickets.load_rounds(round_directory)
            if not rounds or rounds[-1]["round"] != index:
                raise ValueError(f"it does not end with the record of round {index}")
        records.append(rounds[-1])
    return records


def divergence(run: str) -> Optional[Dict[str, Any]]:
    """Where the run diverged ({'round', 'step', 'reason'}), or None if it never did."""
    for index in layout.round_indices(run):
        path = layout.diverged_file(layout.round_dir(run, index))
        if os.path.exists(path):
            with reading(path, f"delete it to retry round {index} from its last checkpoint"):
                return storage.load_json(path)
    return None


def diverged_message(run: str, where: Dict[str, Any]) -> str:
    """Why a diverged run stops, and what a researcher can do about it."""
    path = layout.diverged_file(layout.round_dir(run, where["round"]))
    return (
        f"training {report.format_divergence(where)} in {run}; its finished rounds are kept. "
        f"Re-running refuses: change the settings (e.g. a lower --learning_rate), delete {path} "
        f"to retry the round (from its last checkpoint), or {START_ANEW}"
    )


def resume_point(run: str, only_round: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """The newest checkpoint of a run (or of one round): {'path', 'state', 'round_dir'}, or None."""
    indices = layout.round_indices(run) if only_round is None else [only_round]
    for index in reversed(indices):
        round_directory = layout.round_dir(run, index)
        directory = layout.checkpoint_dir(round_directory)
        index_file = layout.checkpoint_index_file(directory)
        if not os.path.exists(index_file):
            continue  # no checkpoint finished in this round yet
        with reading(index_file, redo_from(round_directory)):
            path = tf.train.latest_checkpoint(directory)
            if path is None:  # TensorFlow only logs a warning
                raise ValueError("it is unreadable or names a checkpoint that is missing")
        state_path = layout.state_file(directory, _checkpoint_number(path))
        with reading(state_path, redo_from(round_directory)):
            state = storage.load_json(state_path)
        return {"path": path, "state": state, "round_dir": round_directory}
    return None


def load_thetas(run: str, state: Dict[str, Any], fresh):
    """The θ₀ and θ_k (None unless the saved state had captured it) a resumed ticket rewinds to.

    Refuses weights saved from another model: names and shapes must be those of `fresh`
    (a snapshot of the freshly built model).
    """
    thetas = []
    for name, needed in (("theta_0", True), ("theta_k", state["callback"]["has_theta_k"])):
        path = layout.theta_file(run, name)
        with reading(path, START_ANEW):
            snapshot = lth_keras.WeightSnapshot.load(path) if needed else None
            if snapshot is not None:
                lth_keras.model_state.check_snapshot_fits(snapshot, {k: v.shape for k, v in fresh.items()})
        thetas.append(snapshot)
    return thetas


def restore(model, callback, point, theta_dir: Optional[str] = None) -> int:
    """Puts a run back where `point` left it; returns the validation intervals it had done.

    (A run's Keras epoch is one validation interval; the state file keeps the count under
    its old key "epoch", so runs stored before the rename still resume.)

    A ticket passes the directory of the θ₀ and θ_k it saved (`theta_dir`); a control,
    which never rewinds, keeps the freshly built model's weights as θ₀.
    """
    callback.prepare(model)  # the optimizer's fresh state, before the checkpoint overwrites it
    theta_0 = theta_k = None
    if theta_dir is not None:
        theta_0, theta_k = load_thetas(theta_dir, point["state"], callback.theta_0)
    with reading(point["path"], redo_from(point["round_dir"])):
        saved = checkpoints.RunCheckpoint(model, callback.checkpoint_items(point["state"]["callback"]))
        saved.checkpoint.restore(point["path"]).assert_consumed()
        saved.after_restore()
        callback.load_state(point["state"]["callback"], theta_0 or callback.theta_0, theta_k)
    return point["state"]["epoch"]


class RoundLogger(lth_keras.LotteryTicketCallback):
    """The lottery callback that also writes files, TensorBoard and checkpoints for `run_dir`."""

    def __init__(
        self,
        run_dir: str,
        checkpoint_every_intervals: int,
        branch_name: str,
        line_style: str,
        branch_label: Optional[str] = None,
        is_ticket: bool = True,
        position: Optional[progress_bar.Position] = None,
        progress_stream=None,
        plot_every_seconds: Optional[float] = None,
        interval_steps_written: Optional[int] = None,
        **kwargs,
    ):
        """`is_ticket`: save θ₀/θ_k and keep each finished round's checkpoint until the next
        round is done (the next round prunes from it); a control round needs neither.
        `branch_name` and `line_style` name and draw the run in TensorBoard's plots, whose
        legend says `branch_label` (default `branch_name`).
        `position` (rounds and replicate) labels the progress bar, drawn on `progress_stream`
        (default stdout) when that is a terminal; without `position` there is no bar.
        `plot_every_seconds`: the least time between two draws of the plot images (0: every
        round; default PLOT_EVERY_SECONDS); a fit's last round is always drawn.
        `interval_steps_written`: the last step of the per-interval scalars in the run's
        TensorBoard directory, if known (the callback of the fit before in this process
        knows it); else it is read from the event files when fit starts."""
        super().__init__(**kwargs)
        self.run_dir = run_dir
        self.checkpoint_every_intervals = checkpoint_every_intervals
        self.is_ticket = is_ticket
        self.branch_name, self.line_style = branch_name, line_style
        self.branch_label = branch_label or branch_name
        self.writer = tf.summary.create_file_writer(layout.tensorboard_dir(run_dir))
        self._intervals_done = 0  # validation intervals, one Keras epoch each
        self._known_steps_written = interval_steps_written
        self._interval_steps_written = 0  # per-interval scalars up to this step are in TensorBoard
        self.position = position
        self.bar = progress_bar.ProgressBar(progress_stream, enabled=position is not None)
        self._epoch = 0
        self.plot_every_seconds = PLOT_EVERY_SECONDS if plot_every_seconds is None else plot_every_seconds
        _LAST_PLOTTED.setdefault(run_dir, time.monotonic())
        self._plotted_round = None  # the round this callback last drew the plots for

    @property
    def interval_steps_written(self) -> int:
        """The last step of the per-interval scalars this run has in TensorBoard."""
        return self._interval_steps_written

    def set_intervals_done(self, count: int) -> None:
        self._intervals_done = count

    # Files are written after the callback's own work, so they describe a consistent state;
    # each is recorded in the run's manifest once complete.
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._interval_steps_written = self._known_steps_written
        if self._interval_steps_written is None:
            self._interval_steps_written = last_interval_step(layout.tensorboard_dir(self.run_dir))
        self.manifest = Manifest.load(self.run_dir)
        self._record_unrecorded_ticket_files()
        self._save_theta()
        if self.rounds:  # the last round's files, if a crash came between its checkpoint and them
            last = self.rounds[-1]
            if not os.path.exists(layout.record_file(layout.round_dir(self.run_dir, last["round"]))):
                self._save_round_ticket(last)

    def _record_unrecorded_ticket_files(self) -> None:
        """Ticket files a crash left unrecorded (between writing and recording them): each was
        written atomically, so it is whole; recording it lets its checkpoint be deleted later."""
        names = {tickets.MASKS_FILE, tickets.ROUNDS_FILE} | {f"{name}.npz" for name in tickets.THETAS}
        paths = [
            os.path.join(self.run_dir, p)
            for p in self.manifest.unrecorded()
            if os.path.basename(p) in names and not integrity.in_checkpoint(p)
        ]
        if paths:
            self.manifest.record(*paths)

    # --- the progress bar and the per-interval scalars ----------------------------------

    def _implements_train_batch_hooks(self):
        return super()._implements_train_batch_hooks() or self.bar.enabled  # the bar moves per step

    def _steps_into_round(self, epoch: int, steps_into_epoch: int) -> int:
        """Steps of the current round trained by then: each fit starts at a round's first epoch."""
        return (epoch % self.epochs_per_round) * self.params["steps"] + steps_into_epoch

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)  # may start the next round
        self._epoch = epoch
        if self.position is not None and not self.bar.active:
            round_steps = self.epochs_per_round * self.params["steps"]
            label = self.position.label(self.current_round)
            self.bar.start(label, round_steps, done=self._steps_into_round(epoch, 0))

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self.bar.update(self._steps_into_round(self._epoch, batch + 1))

    def print_round_line(self, line: str) -> None:
        self.bar.finish()  # the round is over: its line replaces the bar
        self.bar.print_line(line)

    def on_train_end(self, logs=None):
        self.bar.finish()
        super().on_train_end(logs)
        if not self.rounds or self._plotted_round == self.rounds[-1]["round"]:
            return
        last = self.position is None or self.rounds[-1]["round"] + 1 >= self.position.rounds
        if last or STOP.requested or self.diverged or self._plots_due():
            self._write_plots(self.rounds[-1]["round"])

    def _plots_due(self) -> bool:
        return time.monotonic() - _LAST_PLOTTED[self.run_dir] >= self.plot_every_seconds

    def _write_interval(self, epoch: int, logs, round_index: int) -> None:
        """The interval's training and validation metrics, at the run's step: round r's steps
        are r * steps_per_round + 1 ... (r + 1) * steps_per_round, whichever fit trains it."""
        round_steps = self.epochs_per_round * self.params["steps"]
        step = round_index * round_steps + self._steps_into_round(epoch, self.params["steps"])
        if step <= self._interval_steps_written:
            return  # written before this run was resumed
        with self.writer.as_default():
            tf.summary.experimental.write_raw_pb(
                serialized_scalars(interval_scalars(logs, round_index)), step=step
            )
        self._interval_steps_written = step

    def on_epoch_end(self, epoch, logs=None):
        self._intervals_done = epoch + 1
        rounds_before = len(self.rounds)
        round_index = self.current_round  # before a finished round moves it on
        self.bar.update(self._steps_into_round(epoch, self.params["steps"]))
        super().on_epoch_end(epoch, logs)
        self._write_interval(epoch, logs or {}, round_index)
        if self.diverged:
            return  # no checkpoint of NaN weights: a retry starts from the last good one
        self._save_theta()
        due = self._intervals_done % self.checkpoint_every_intervals == 0 or STOP.requested
        if len(self.rounds) == rounds_before and due:  # a finished round has just checkpointed
            if self.stop_if_diverged(logs or {}, weights=True):
                return  # the loss was finite, the weights are not: never checkpoint them
            self._checkpoint(layout.round_dir(self.run_dir, self.current_round))
        if STOP.requested:
            self.model.stop_training = True

    def on_diverged(self, where):
        path = layout.diverged_file(layout.round_dir(self.run_dir, where["round"]))
        storage.save_json(path, where)
        self.manifest.record(path)

    def on_round_end(self, record):
        self.bar.finish()  # also when verbose=0 printed no round line
        self._save_theta()  # θ_k may have been captured in this very interval
        if self.is_ticket:  # the next round prunes from this state
            self._checkpoint(layout.round_dir(self.run_dir, record["round"]))
        self._save_round_ticket(record)
        self._drop_old_checkpoints(record["round"])
        self._write_tensorboard(record)
        if self._plots_due():
            self._write_plots(record["round"])

    def _save_round_ticket(self, record):
        """The round's directory as a ticket: masks, the θ it rewinds to, the records (last).

        A ticket round links the run's θ files; a control round keeps the weights it started from.
        """
        round_directory = layout.round_dir(self.run_dir, record["round"])
        rounds = [r for r in self.rounds if r["round"] <= record["round"]]
        if self.is_ticket:
            thetas = {name: layout.theta_file(self.run_dir, name) for name in self._thetas_captured()}
            ticket = tickets.Ticket(lth_keras.get_masks(self.model), None, None, rounds)
        else:
            thetas = {}
            ticket = tickets.Ticket(lth_keras.get_masks(self.model), self.theta_0, None, rounds)
        tickets.save_ticket(round_directory, ticket, thetas, on_written=self.manifest.record)

    def _thetas_captured(self):
        return [name for name in tickets.THETAS if os.path.exists(layout.theta_file(self.run_dir, name))]

    def _save_theta(self):
        if not self.is_ticket:
            return
        for name in tickets.THETAS:
            snapshot, path = getattr(self, name), layout.theta_file(self.run_dir, name)
            if snapshot is not None and not os.path.exists(path):
                snapshot.save(path)
                self.manifest.record(path)

    def _checkpoint(self, round_directory: str):
        directory = layout.checkpoint_dir(round_directory)
        saved = checkpoints.RunCheckpoint(self.model, self.checkpoint_items())
        manager = tf.train.CheckpointManager(saved.checkpoint, directory, max_to_keep=2)
        doomed = manager.checkpoints[: max(0, len(manager.checkpoints) - 1)]  # dropped by this save
        for prefix in doomed:  # forgotten before deleted: a crash between leaves them unrecorded
            self._forget_checkpoint(prefix)
        state = {"epoch": self._intervals_done, "callback": self.state_dict()}
        state_path = layout.state_file(directory, self._intervals_done)
        storage.save_json(state_path, state)
        try:
            saved.before_save()
            path = manager.save(checkpoint_number=self._intervals_done)
        except tf.errors.OpError as e:
            if os.strerror(errno.ENOSPC) in str(e):
                raise storage.DiskFullError(directory) from e
            raise
        self.manifest.record(state_path, *glob.glob(path + ".*"))
        self.writer.flush()  # TensorBoard holds what the checkpoint holds, or more
        for prefix in doomed:
            state_of_doomed = layout.state_file(directory, _checkpoint_number(prefix))
            if os.path.exists(state_of_doomed):
                os.remove(state_of_doomed)

    def _forget_checkpoint(self, prefix: str) -> None:
        """Drops a checkpoint's files and its progress file from the manifest (they are deleted next)."""
        directory = os.path.dirname(prefix)
        for path in glob.glob(prefix + ".*") + [layout.state_file(directory, _checkpoint_number(prefix))]:
            self.manifest.forget(path)

    def _drop_old_checkpoints(self, finished_round: int):
        """Rounds before the one just finished (a control: up to it) no longer need checkpoints,
        once the finished round's files and their own verify; a checkpoint is kept (and said)
        while it is the only good copy of its round's masks or record."""
        damaged = self._damaged_round_files(finished_round)
        for index in layout.round_indices(self.run_dir):
            if not (index < finished_round or (index == finished_round and not self.is_ticket)):
                continue
            directory = layout.checkpoint_dir(layout.round_dir(self.run_dir, index))
            if not os.path.isdir(directory):
                continue
            damaged_here = damaged + self._damaged_round_files(index)
            if damaged_here:
                print(f"keeping {directory}: {', '.join(damaged_here)} did not verify; re-run to rebuild")
                continue
            self.manifest.forget(directory)
            shutil.rmtree(directory, ignore_errors=True)

    def _damaged_round_files(self, index: int) -> List[str]:
        """The files of a round's ticket that are missing from the manifest or fail it."""
        round_directory = layout.round_dir(self.run_dir, index)
        names = [tickets.MASKS_FILE, tickets.ROUNDS_FILE] + [f"{name}.npz" for name in tickets.THETAS]
        paths = [os.path.join(round_directory, name) for name in names]
        must_exist = paths[:2]
        return [p for p in paths if (p in must_exist or os.path.exists(p)) and not self.manifest.verifies(p)]

    def _write_tensorboard(self, record):
        with self.writer.as_default():
            for tag, value in round_scalars(record).items():
                tf.summary.scalar(tag, value, step=record["round"])
        self.writer.flush()

    def _write_plots(self, round_index: int) -> None:
        """The plot images of the rounds so far, at step `round_index`."""
        rows = report.aggregate([self.rounds])
        with self.writer.as_default():
            for metric in ("accuracy", "early_stop_step"):
                styles = {self.branch_name: self.line_style}
                png = report.figure_png(
                    report.plot(
                        {"this run": {self.branch_name: rows}},
                        metric,
                        styles,
                        labels={self.branch_name: self.branch_label},
                    )
                )
                tf.summary.image(f"plot/{metric}", tf.image.decode_png(png)[None], step=round_index)
        self.writer.flush()
        _LAST_PLOTTED[self.run_dir] = time.monotonic()
        self._plotted_round = round_index


def _checkpoint_number(prefix: str) -> int:
    """N of TensorFlow's checkpoint prefix '.../ckpt-N'."""
    return int(re.search(r"-(\d+)$", prefix).group(1))


def describe(state: Dict[str, Any]) -> str:
    """Where a checkpoint stands, for the resume message."""
    callback = state["callback"]
    return json.dumps({"round": callback["round"], "intervals_done": state["epoch"]})
