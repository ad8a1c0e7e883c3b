"""Running an experiment module the way a user does: a subprocess from the repo root."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_experiment(module: str, *flags: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m experiments.<module> <flags>`; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", f"experiments.{module}", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_rows(stdout: str):
    """The header and the cells of each row of the Markdown round table in `stdout`."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    return lines[0], [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
