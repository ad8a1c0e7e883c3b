"""The benchmarks stay runnable: each imports, defines its flags and parses them.

Running them is what benchmarks/ is for (README "Speed"); here each only shows its
--helpfull, in a subprocess of its own since their flags share names. The backends
benchmark also runs, at a tiny setting: its worker processes in the other venvs are what
could break.
"""

import re
import subprocess
import sys

import pytest

from tests.helpers.cli import ROOT

BENCHMARK_FLAGS = {
    "backends": ["--steps", "--conv_steps", "--repeats", "--backends", "--models"],
    "cli_start": ["--suite", "--repeats"],
    "round_boundary": ["--models", "--rounds", "--steps_per_round", "--rewind_step"],
    "round_speed": ["--model", "--steps", "--repeats"],
    "step_time": ["--models", "--steps", "--repeats"],
}


@pytest.mark.parametrize("name", sorted(BENCHMARK_FLAGS))
def test_a_benchmark_imports_and_parses_its_flags(name):
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--helpfull"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    heading = f"benchmarks/{name}.py:"  # absl lists a module's flags under its file (and exits 1)
    assert heading in result.stdout, result.stderr[-3000:]
    own = result.stdout.split(heading)[1]
    for flag in BENCHMARK_FLAGS[name]:
        assert f"  {flag}:" in own, flag


def test_the_backends_benchmark_prints_a_row_for_each_backend(tmp_path):
    # Tiny: a few LeNet steps, one repeat, no Conv-6 and no torch.compile; a PyTorch venv that
    # is not there must be said in its rows, not stop the rest. Rows only, never timings.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.backends",
            "--steps=4",
            "--steps_per_execution=2",
            "--repeats=1",
            "--models=lenet",
            "--notorch_compile",
            f"--torch_python={tmp_path / 'no-venv' / 'python'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    measured = r"\| \d+\.\d{3} \(\d+\.\d{3}–\d+\.\d{3}\) \|"
    for backend in ("tf_keras", "Keras 3 TensorFlow"):
        assert any(row.startswith(f"| {backend} |") and re.search(measured, row) for row in rows), backend
    jax = [row for row in rows if row.startswith("| Keras 3 JAX |")]
    assert len(jax) == 2 and all(re.search(measured, row) or "not measured" in row for row in jax)
    torch = [row for row in rows if row.startswith("| Keras 3 PyTorch |")]
    assert len(torch) == 2 and all("not measured: no " in row for row in torch), torch
    assert any(row.startswith("| fit: the lottery model with its callback") for row in rows)
    assert "Fastest Keras 3 backend" in result.stdout
