"""The suites' command line (experiments/cli.py): refusals, help, quiet start-up, the run's last lines.

Every refusal of a flag is `error: ...` naming it, exit code 2, before TensorFlow is imported;
--help lists the suite's flags by group with the suite's defaults; a run's stderr carries none
of TensorFlow's start-up lines unless -v asks; --smoke says what it shrank; a finished run
ends with its directory and the commands that show it.
"""

import os
import re
import subprocess
import sys

import pytest

from experiments import config as config_lib
from lth_keras import schedule
from lth_keras.paper import datasets, models
from tests.conftest import write_dataset
from tests.helpers.cli import ROOT, run_experiment

# Lines TensorFlow's C++ start-up writes (absl's glog-style "I0000 00:00:..." lines and its
# note on them), which a quiet run must not show.
START_UP_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuInit|cuda", re.MULTILINE)


def _refusal(module, *flags):
    result = run_experiment(module, *flags, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "FATAL" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    return result.stderr.strip()


def test_an_unknown_flag_is_refused_with_absls_suggestion():
    assert _refusal("lenet", "--prune_iter=3") == (
        "error: --prune_iter=3: unknown flag (did you mean --prune_iters?); --help lists the flags"
    )


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--iterations=abc", "error: --iterations=abc: invalid literal for int()"),  # wrong type
        ("--smoke=maybe", "error: --smoke=maybe: "),  # wrong type
        ("--lr_drops=ten", "error: --lr_drops=ten: must be integers"),  # wrong type
        ("--prune_rate=1.5", "error: --prune_rate=1.5: must be in [0, 1)"),  # out of range
        ("--model=alexnet", "error: --model='alexnet': must be one of"),  # out of range
        ("--scope=local", "error: --scope='local': must be one of ['layerwise', 'global']"),
        ("--eval_every=7", "error: --eval_every=7: must divide --iterations=30000"),  # inconsistent
        ("--strategy=tpu", "error: --tpu='': --strategy=tpu needs --tpu"),  # inconsistent
        ("--iterations", "error: Missing value for flag --iterations"),
        ("--nosmoke=1", "error: --nosmoke=1 does not take an argument"),
        ("--mask_criterion=biggest", "error: --mask_criterion='biggest': must be one of ['large_final',"),
        ("--threshold_scale=-0.5", "error: --threshold_scale=-0.5: must be a finite number > 0"),
        ("--threshold_scale=0.3", "error: --threshold_scale=0.3: is read by --mask_criterion=threshold only"),
    ],
)
def test_a_bad_value_is_refused_naming_the_flag(flag, message):
    assert _refusal("conv6", flag).startswith(message)


def test_a_stray_argument_is_refused():
    assert _refusal("lenet", "prune_iters=3") == (
        "error: unexpected arguments ['prune_iters=3']: flags take the form --flag=value"
    )


@pytest.mark.parametrize("flag", ["--prune_iter=3", "--iterations=abc", "--eval_every=7"])
def test_a_refusal_imports_no_tensorflow(flag):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "experiments.conv6", flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "experiments.config" in imported  # the flags were read...
    assert not {
        m for m in imported if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")
    }  # ...without TF


def test_the_config_states_the_choices_the_library_defines():
    """experiments/config.py states them to check flags without TensorFlow; they must agree."""
    assert config_lib.MODEL_NAMES == tuple(models.MODELS)
    assert config_lib.SCOPES == schedule.SCOPES
    assert set(config_lib.DATASET_NAMES) == set(datasets.DATASETS) | {"synthetic"}


GROUPS = ["Data (", "Network (", "Training (", "Pruning (", "Run ("]
GROUP_OF = {"--dataset": "Data (", "--model": "Network (", "--iterations": "Training ("}
GROUP_OF.update({"--conv_prune_rate": "Pruning (", "--[no]one_shot": "Pruning (", "--prune_iters": "Run ("})


def _sections(text):
    """Each group heading -> the lines under it."""
    sections, current = {}, None
    for line in text.splitlines():
        if any(line.startswith(group) for group in GROUPS):
            current = next(group for group in GROUPS if line.startswith(group))
            sections[current] = []
        elif current:
            sections[current].append(line)
    return sections


def _flag_text(section, flag):
    """The help of `flag` in a section: its line and the indented lines after it."""
    lines = section[[i for i, line in enumerate(section) if line.startswith(f"  {flag}:")][0] :]
    rest = [line for line in lines[1:]]
    end = next((i for i, line in enumerate(rest) if not line.startswith("      ")), len(rest))
    return " ".join(line.strip() for line in lines[: 1 + end])


@pytest.mark.parametrize(
    "suite, help_flag, defaults",
    [
        ("lenet", "--help", {"--dataset": "'mnist'", "--model": "'lenet'", "--iterations": "'50000'"}),
        ("conv6", "--helpshort", {"--dataset": "'cifar10'", "--conv_prune_rate": "'0.15'"}),
        ("resnet20", "-h", {"--iterations": "'62500'", "--[no]one_shot": "'false'"}),
    ],
)
def test_help_lists_the_suites_flags_by_group_with_its_defaults(suite, help_flag, defaults):
    result = run_experiment(suite, help_flag, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m experiments.{suite} ")
    headings = [line for line in result.stdout.splitlines() if line.startswith(tuple(GROUPS))]
    assert [h[: h.index("(") + 1] for h in headings] == GROUPS
    sections = _sections(result.stdout)
    for flag, group in GROUP_OF.items():
        assert any(line.startswith(f"  {flag}:") for line in sections[group]), (flag, group)
    for flag, default in defaults.items():
        assert _flag_text(sections[GROUP_OF[flag]], flag).endswith(f"(default: {default})")
    assert "logtostderr" not in result.stdout and "tensorflow." not in result.stdout  # --helpfull's modules
    assert "--helpfull" in result.stdout


def test_helpfull_adds_the_branches_and_absls_and_tensorflows_flags():
    result = run_experiment("lenet", "--helpfull", timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m experiments.lenet ")
    assert "reinit: retrain each of the ticket's masks" in result.stdout
    assert "logtostderr:" in result.stdout and "tensorflow." in result.stdout
    assert not START_UP_LINE.search(result.stderr), result.stderr


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A tiny synthetic LeNet run with --smoke and its experiment directory."""
    output_dir = tmp_path_factory.mktemp("smoke")
    result = run_experiment("lenet", "--dataset=synthetic", "--smoke", f"--output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    (experiment,) = os.listdir(output_dir)
    return result, os.path.join(output_dir, experiment)


def test_a_run_is_quiet_on_stderr(smoke_run):
    result, _ = smoke_run
    assert not START_UP_LINE.search(result.stderr), result.stderr
    assert "WARNING" not in result.stderr


def test_smoke_says_in_one_line_what_it_shrank(smoke_run):
    result, _ = smoke_run
    (line,) = [line for line in result.stdout.splitlines() if "--smoke" in line]
    assert line.startswith("--smoke: 3 rounds; ")
    for change in ("prune_iters 20 -> 2", "iterations 50000 -> 10", "batch_size 60 -> 16"):
        assert change in line
    assert "data cut to 256 train, 64 validation, 64 test examples" in line


def test_a_finished_run_ends_with_its_directory_and_the_commands_to_see_it(smoke_run):
    result, experiment = smoke_run
    last = result.stdout.strip().splitlines()[-3:]
    assert last[0] == f"results: {experiment}"
    assert last[1].endswith(f"python -m experiments.report {experiment}")
    assert last[2].endswith(f"tensorboard --logdir {experiment}")


def _unavailable_cifar10(output_dir, *flags):
    """conv6 (CIFAR-10) with --smoke, where TFDS has no prepared CIFAR-10; it must be refused."""
    empty = output_dir / "empty_tfds"
    empty.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.conv6", "--prune_iters=20", "--smoke", *flags]
        + [f"--output_dir={output_dir / 'runs'}"],
        cwd=ROOT,
        env={**os.environ, "TFDS_DATA_DIR": str(empty)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def unavailable_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("unavailable")
    return _unavailable_cifar10(output_dir), output_dir


def test_an_unavailable_dataset_lists_the_ones_available_offline(unavailable_run):
    result, output_dir = unavailable_run
    assert result.stderr.startswith("error: dataset 'cifar10' is not available")
    offline = [line for line in result.stderr.splitlines() if line.startswith("Available offline here: ")]
    assert offline and "mnist1d" in offline[0]  # generated by the mnist1d package, a dependency
    assert "--dataset=synthetic" in result.stderr
    assert not os.path.exists(output_dir / "runs")


def test_start_up_lines_show_only_with_verbosity(unavailable_run, tmp_path):
    quiet, _ = unavailable_run
    assert not START_UP_LINE.search(quiet.stderr), quiet.stderr
    assert "dataset_info.json" not in quiet.stderr  # TFDS's warning while looking for CIFAR-10
    verbose = _unavailable_cifar10(tmp_path, "-v=0")
    assert START_UP_LINE.search(verbose.stderr), verbose.stderr
    assert "dataset_info.json" in verbose.stderr


def test_available_offline_finds_idx_files_without_reading_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "no_debian_copy"))
    assert datasets.available_offline() == ["mnist1d", "maxgroup"]
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(write_dataset(tmp_path)))
    assert datasets.available_offline() == ["fashion_mnist", "mnist1d", "maxgroup"]
    assert datasets.available_offline(data_dir=str(tmp_path)) == [
        "fashion_mnist",
        "mnist",
        "mnist1d",
        "maxgroup",
    ]
