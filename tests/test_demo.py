"""The README's main command (`make demo`) runs experiments.lenet; its flags work on IDX data."""

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import write_dataset
from tests.helpers.cli import ROOT, run_experiment, table_rows


def test_makefile_demo_runs_the_lenet_suite_on_fashion_mnist():
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    assert re.search(r"-m experiments.lenet \$\(DEMO_FLAGS\)", makefile)
    assert "--dataset=fashion_mnist" in makefile


def test_demo_flags_print_the_round_table(tmp_path):
    write_dataset(tmp_path, n_train=5300, n_test=200)
    result = run_experiment(
        "lenet",
        "--dataset=fashion_mnist",
        f"--data_dir={tmp_path}",
        "--prune_iters=2",
        "--iterations=20",
        "--eval_every=10",
        "--batch_size=100",
        f"--output_dir={tmp_path / 'runs'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lenet: 266,200 prunable weights" in result.stdout
    header, rows = table_rows(result.stdout)
    assert header.startswith("| round | weights remaining | test_accuracy")
    assert [r[0] for r in rows] == ["0", "1", "2"]
    remaining = [float(r[1].rstrip("%")) for r in rows]
    assert remaining[0] == 100.0 and remaining[0] > remaining[1] > remaining[2]
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows)


def test_make_demo_shows_the_directory_it_writes():
    """make echoes the demo's command with its real --output_dir (the run ends by naming it too)."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    result = subprocess.run(
        # -o: the set-up targets are taken as done (their recipes and setup.py are not what is tested)
        ["make", "-n", "-o", "install", "-o", "fashion-mnist", "-f", os.path.join(ROOT, "Makefile"), "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if "-m experiments.lenet" in line]
    assert re.search(r"--output_dir=runs/demo-\d{8}-\d{6}$", command), command
