"""The benchmarks stay runnable: each imports, defines its flags and parses them.

Running them is what benchmarks/ is for (README "Speed"); here each only shows its
--helpfull, in a subprocess of its own since their flags share names.
"""

import subprocess
import sys

import pytest

from tests.helpers.cli import ROOT

BENCHMARK_FLAGS = {
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
