"""A run stopped by a signal or a full disk resumes to the uninterrupted result; one process per branch."""

import os
import signal
import socket
import subprocess
import time

import pytest

from experiments import integrity, layout, lock
from experiments.branches import TICKET
from experiments.manifest import MANIFEST_FILE
from tests.helpers.lenet_runs import (
    assert_same_runs,
    experiment_dir,
    kill_lenet,
    run_lenet,
    start_troubled_lenet,
    ticket_run_dir,
)


def _wait_for(path, process):
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)


# Writes: config, θ₀, state-2, state-4, round 0's masks and record, each then recorded in the
# manifest; the 13th is round 1's state-6, the 14th the manifest recording it and ckpt-6.
@pytest.mark.parametrize(
    "count, failed",
    [
        (13, lambda run: layout.state_file(layout.checkpoint_dir(layout.round_dir(run, 1)), 6)),
        (14, lambda run: os.path.join(run, MANIFEST_FILE)),
    ],
    ids=["a_checkpoint", "the_manifest_after_a_checkpoint"],
)
def test_full_disk_stops_with_a_message_and_the_run_resumes(lenet_reference, tmp_path, count, failed):
    process = start_troubled_lenet(tmp_path, "full_disk", count)
    run = ticket_run_dir(tmp_path)
    failed = failed(run)
    assert process.returncode == 1, process.stderr_text[-3000:]
    assert (
        f"error: no space left on device while writing {failed}; "
        "free space and re-run the same command to resume"
    ) in process.stderr_text
    assert os.path.exists(layout.record_file(layout.round_dir(run, 0)))  # the finished round is kept
    assert not os.path.exists(layout.lock_file(experiment_dir(tmp_path), TICKET.name))
    assert "resuming" in run_lenet(tmp_path).stdout
    assert_same_runs(lenet_reference, tmp_path)
    assert integrity.problems(run) == []


def test_second_run_is_refused_and_sigterm_stops_the_first_at_a_checkpoint(lenet_reference, tmp_path):
    first = start_troubled_lenet(tmp_path, "slow", 2.0, wait=False)  # still running after the second one ends
    run = ticket_run_dir(tmp_path)
    _wait_for(layout.checkpoint_index_file(layout.checkpoint_dir(layout.round_dir(run, 0))), first)
    lock_path = layout.lock_file(experiment_dir(tmp_path), TICKET.name)
    assert open(lock_path).read() == f'{{"pid": {first.pid}, "host": "{socket.gethostname()}"}}'

    second = start_troubled_lenet(tmp_path, "slow", 0)
    assert second.returncode == 2
    assert f"another run (pid {first.pid} on {socket.gethostname()}) is writing this experiment" in (
        second.stderr_text
    )

    assert first.poll() is None
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 143, stderr[-3000:]
    assert "stopped by SIGTERM after a checkpoint; re-run the same command to resume" in stderr
    assert not os.path.exists(lock_path)
    assert not os.path.exists(layout.record_file(layout.round_dir(run, 2)))
    assert "resuming" in run_lenet(tmp_path).stdout
    assert_same_runs(lenet_reference, tmp_path)


def test_sigint_stops_with_exit_code_130_after_writing_a_checkpoint(tmp_path):
    process = start_troubled_lenet(tmp_path, "slow", 1.0, wait=False)
    run = ticket_run_dir(tmp_path)
    _wait_for(layout.theta_file(run, "theta_0"), process)  # in epoch 1; the first periodic checkpoint is at 2
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr[-3000:]
    assert "stopped by SIGINT after a checkpoint; re-run the same command to resume" in stderr
    assert "Traceback" not in stderr
    state = layout.state_file(layout.checkpoint_dir(layout.round_dir(run, 0)), 1)  # written at epoch 1
    assert os.path.exists(state)


# --- the lock itself ---------------------------------------------------------------


def _dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _write_lock(path, pid, host):
    path.write_text(f'{{"pid": {pid}, "host": "{host}"}}')


def test_lock_is_exclusive_and_removed_on_exit(tmp_path):
    path = str(tmp_path / "ticket.lock")
    with lock.RunLock(path):
        assert lock.live_owner(path) == {"pid": os.getpid(), "host": socket.gethostname()}
        with pytest.raises(lock.LockedError, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            lock.RunLock(path).__enter__()
    assert not os.path.exists(path) and lock.live_owner(path) is None


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path, capsys):
    path = tmp_path / "ticket.lock"
    dead = _dead_pid()
    _write_lock(path, dead, socket.gethostname())
    assert lock.live_owner(str(path)) is None
    with lock.RunLock(str(path)):
        assert f'"pid": {os.getpid()}' in path.read_text()
    assert f"taking over the stale lock {path} (its pid {dead} on" in capsys.readouterr().out


@pytest.mark.parametrize("host", ["same", "other"])
def test_a_live_or_remote_owner_keeps_the_lock(tmp_path, host):
    path = tmp_path / "ticket.lock"
    pid = os.getppid() if host == "same" else _dead_pid()  # another host's pid cannot be checked
    name = socket.gethostname() if host == "same" else "elsewhere.example"
    _write_lock(path, pid, name)
    with pytest.raises(lock.LockedError, match=f"another run \\(pid {pid} on {name}\\)"):
        lock.RunLock(str(path)).__enter__()
    assert path.exists()


# --- random state ------------------------------------------------------------------


@pytest.mark.parametrize(
    "speed_flags",
    [(), ("--nojit_compile",)],
    ids=["xla_fused_steps", "plain_graph"],
)
def test_sigkilled_run_with_dropout_resumes_to_identical_results(tmp_path, speed_flags):
    # Killed in round 1, one epoch after its checkpoint: that epoch's dropout masks are drawn again.
    flags = ("--dropout=0.5", *speed_flags)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    run_lenet(reference, *flags)
    kill_lenet(resumed, "epoch", 7, *flags)
    assert "resuming" in run_lenet(resumed, *flags).stdout
    assert_same_runs(reference, resumed, dropout=0.5)
