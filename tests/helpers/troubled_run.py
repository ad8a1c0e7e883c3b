"""Runs an experiment suite with one thing going wrong, for the tests of what a run does then.

python -m tests.helpers.troubled_run slow SECONDS SUITE [flags...]
    sleeps SECONDS after every Keras epoch, so a test can signal the run mid-way
python -m tests.helpers.troubled_run full_disk N SUITE [flags...]
    the N-th file the run writes fails as on a full disk (OSError ENOSPC at its fsync)
python -m tests.helpers.troubled_run nan EPOCH SUITE [flags...]
    a weight becomes NaN during Keras epoch EPOCH (1-based), as when training diverges
"""

import errno
import importlib
import os
import subprocess
import sys
import time

from experiments import progress, runner
from tests.helpers.cli import ROOT


def start(mode: str, value, suite: str, *flags: str, wait: bool = True) -> subprocess.Popen:
    """Starts this helper; returns the finished process (with `stdout_text`, `stderr_text`) or,
    with `wait=False`, the running one."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.troubled_run", mode, str(value), suite, *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if wait:
        process.stdout_text, process.stderr_text = process.communicate(timeout=600)
    return process


def _after_each_epoch(action):
    """Calls action(logger, epochs_done) before RoundLogger's own epoch-end work."""
    original = progress.RoundLogger.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        action(self, epoch + 1)
        original(self, epoch, logs)

    progress.RoundLogger.on_epoch_end = on_epoch_end


def _fail_nth_fsync(count: int) -> None:
    original, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == count:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(fd)

    os.fsync = fsync


def _poison(logger, epochs_done: int, epoch: int) -> None:
    if epochs_done == epoch:
        variable = logger.model.trainable_variables[0]
        variable.assign(variable * float("nan"))


def main():
    mode, value, suite = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "slow":
        _after_each_epoch(lambda logger, done: time.sleep(float(value)))
    elif mode == "full_disk":
        _fail_nth_fsync(int(value))
    elif mode == "nan":
        _after_each_epoch(lambda logger, done: _poison(logger, done, int(value)))
    else:
        raise SystemExit(f"unknown trouble {mode!r}")
    sys.argv = [sys.argv[0]] + sys.argv[4:]
    runner.main(importlib.import_module(f"experiments.{suite}").DEFAULTS)


if __name__ == "__main__":
    main()
