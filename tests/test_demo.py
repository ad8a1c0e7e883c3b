"""The README's demo command runs end to end on a small IDX dataset and prints the table."""

import os
import subprocess
import sys

from tests.test_datasets import write_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_prints_the_round_table(tmp_path):
    write_dataset(tmp_path, n_train=5300, n_test=200)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.lenet_demo", f"--data_dir={tmp_path}", "--rounds=3",
         "--batch_size=100", "--eval_every_steps=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [l for l in result.stdout.splitlines() if l.startswith("|")]
    assert lines[0].startswith("| round | weights remaining | test_accuracy")
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    remaining = [float(r[1].rstrip("%")) for r in rows]
    assert remaining[0] == 100.0 and remaining[0] > remaining[1] > remaining[2]
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows)
