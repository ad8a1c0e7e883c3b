"""The suites on Keras 3's TensorFlow, JAX and torch backends (--backend), beside tf_keras.

Keras 3 runs one backend per process, so each backend's runs are made by one subprocess
(tests/helpers/backend_runs.py): every conv suite and LeNet with both controls, --smoke, and
the small LeNet of tests/helpers/lenet_runs.py with dropout. A run with the same flags is
then SIGKILLed and resumed here, and must end bit for bit where the uninterrupted one did.
Needs jax and torch in this venv beside TensorFlow (`make test` installs them).
"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from experiments import config as config_lib
from experiments import integrity, layout
from experiments.branches import BRANCHES, TICKET
from tests.helpers.cli import ROOT, run_experiment
from tests.helpers.lenet_runs import assert_same_runs, kill_lenet, run_lenet, ticket_run_dir
from tests.helpers.tensorboard import scalars

RESUMED_FLAGS = ("--dropout=0.5",)


def _installed(backend: str) -> bool:
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


@pytest.fixture(scope="module", params=config_lib.KERAS3_BACKENDS)
def backend_runs(request, tmp_path_factory):
    """(backend, output dir) of tests/helpers/backend_runs.py's runs on that backend."""
    backend = request.param
    if not _installed(backend):
        pytest.fail(f"{backend} is not installed in {sys.prefix}: `make test` installs it")
    output_dir = tmp_path_factory.mktemp(f"runs_{backend}")
    result = subprocess.run(
        [sys.executable, "-m", "tests.helpers.backend_runs", backend, str(output_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return backend, output_dir


def _experiments(output_dir) -> dict:
    """Suite name -> its experiment directory under output_dir/suites."""
    suites = os.path.join(output_dir, "suites")
    return {
        json.load(open(layout.config_file(os.path.join(suites, name))))["model"]: os.path.join(suites, name)
        for name in os.listdir(suites)
    }


def _records(run: str) -> list:
    return [
        json.load(open(layout.record_file(layout.round_dir(run, i))))[-1] for i in layout.round_indices(run)
    ]


def test_every_suite_runs_each_round_on_the_backend_with_intact_files(backend_runs):
    backend, output_dir = backend_runs
    experiments = _experiments(output_dir)
    assert sorted(experiments) == ["conv2", "conv4", "conv6", "lenet"]
    for model, experiment in experiments.items():
        assert json.load(open(layout.config_file(experiment)))["backend"] == backend
        run = layout.run_dir(experiment, TICKET.name, 0)
        records = _records(run)
        assert [r["round"] for r in records] == [0, 1, 2], model
        remaining = [r["weights_remaining"] for r in records]
        assert remaining[0] == 1.0 and remaining[0] > remaining[1] > remaining[2], model
        assert integrity.problems(run) == [], model


def test_the_controls_retrain_each_of_the_tickets_levels(backend_runs):
    _, output_dir = backend_runs
    experiment = _experiments(output_dir)["lenet"]
    ticket = _records(layout.run_dir(experiment, TICKET.name, 0))
    for branch in BRANCHES.values():
        records = _records(layout.run_dir(experiment, branch.name, 0))
        assert [r["weights_remaining"] for r in records] == [r["weights_remaining"] for r in ticket], (
            branch.name
        )


def test_the_report_reads_a_keras_3_experiment(backend_runs):
    _, output_dir = backend_runs
    experiment = _experiments(output_dir)["lenet"]
    result = subprocess.run(
        [sys.executable, "-m", "experiments.report", experiment], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for branch in BRANCHES.values():
        assert branch.name in result.stdout


def test_a_keras_3_round_exports_and_its_file_predicts_as_the_run(backend_runs, tmp_path):
    _, output_dir = backend_runs
    experiment = _experiments(output_dir)["lenet"]
    export_dir = tmp_path / "export"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.export",
            experiment,
            "--format=keras",
            f"--export_dir={export_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.load(open(export_dir / "figures.json"))["figures"]
    ticket = next(f["keras"] for name, f in figures.items() if name.startswith("ticket, round 2"))
    assert ticket["max_difference"] == 0.0  # the file predicts what the stripped model predicts
    assert ticket["kept"] < ticket["parameters"]  # pruned weights are zeros in the file


def test_tensorboard_gets_the_scalars_a_tf_keras_run_gets(backend_runs, lenet_reference):
    backend, output_dir = backend_runs
    written = scalars(ticket_run_dir(os.path.join(output_dir, "reference"), backend=backend, dropout=0.5))
    expected = scalars(ticket_run_dir(lenet_reference))
    assert written.keys() == expected.keys()
    for tag, points in expected.items():
        assert [step for step, _ in written[tag]] == [step for step, _ in points], tag


def test_a_sigkilled_run_resumes_to_the_uninterrupted_result(backend_runs, tmp_path):
    # Killed in round 1, one interval after its checkpoint: that interval's dropout is drawn again.
    backend, output_dir = backend_runs
    flags = (*RESUMED_FLAGS, f"--backend={backend}")
    kill_lenet(tmp_path, "epoch", 7, *flags)
    assert "resuming" in run_lenet(tmp_path, *flags).stdout
    assert_same_runs(os.path.join(output_dir, "reference"), tmp_path, backend=backend, dropout=0.5)


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--backend=mxnet"],
            "error: --backend='mxnet': must be one of ['tf_keras', 'tensorflow', 'jax', 'torch']",
        ),
        (
            ["--backend=jax", "--strategy=mirrored"],
            "error: --strategy='mirrored': tf.distribute strategies train tf_keras models only",
        ),
        (
            ["--backend=torch", "--steps_per_execution=5"],
            "error: --steps_per_execution=5: must be 0 or 1 with --backend=torch",
        ),
    ],
    ids=["unknown", "strategy", "torch_steps_per_execution"],
)
def test_a_bad_backend_or_one_it_cannot_take_is_refused_naming_the_flag(flags, message, tmp_path):
    result = run_experiment("lenet", *flags, f"--output_dir={tmp_path}")
    assert result.returncode == 2
    assert message in result.stderr
    assert os.listdir(tmp_path) == []


def test_a_process_whose_keras_3_runs_another_backend_is_refused(tmp_path):
    code = (
        "import os; os.environ['KERAS_BACKEND'] = 'torch'; import keras, dataclasses; "
        "from experiments import runner; from experiments.lenet import DEFAULTS; "
        f"runner.train_and_evaluate(dataclasses.replace(DEFAULTS, backend='jax', smoke=True, "
        f"dataset='synthetic', output_dir={str(tmp_path)!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "--backend=jax: Keras 3 in this process already runs on torch" in result.stderr
    assert os.listdir(tmp_path) == []


def test_each_backend_names_its_own_experiment():
    lenet = dataclasses.replace(config_lib.ExperimentConfig(), model="lenet")
    names = {layout.experiment_name(dataclasses.replace(lenet, backend=b)) for b in config_lib.BACKENDS}
    assert len(names) == len(config_lib.BACKENDS)
