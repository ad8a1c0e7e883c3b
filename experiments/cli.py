"""The suites' command line: flags, help and refusals first, TensorFlow only after.

`python -m experiments.<suite>` calls `main(DEFAULTS)`. A command line that cannot run (an
unknown flag, a value of the wrong type, out of range or inconsistent with another) is
refused here with `error: --flag=value: ...` and exit code 2, in a fraction of a second:
this module and the ones it imports need no TensorFlow, which takes seconds to import.
TensorFlow is imported once the flags are good, its start-up lines held back (quiet by
default; --verbosity/-v shows them).

    --help, --helpshort   the suite's own flags by group, with the suite's defaults
    --helpfull            also each --control branch, and absl's and TensorFlow's flags
"""

import contextlib
import dataclasses
import logging as python_logging
import os
import sys
import tempfile

from absl import app, flags

from experiments import backend
from experiments import config as config_lib

USAGE_ERROR = 2
SHORT_HELP = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
FULL_HELP = ("--helpfull", "-helpfull")
# Loggers whose warnings at start-up are noise here (TFDS probing a folder that is not
# there, TensorFlow's notes); they speak again with --verbosity/-v.
NOISY_LOGGERS = ("absl", "tensorflow", "jax")


def main(defaults: config_lib.ExperimentConfig, argv=None, check=None, train=None) -> None:
    """Parses and checks the command line, then runs the suite (experiments/runner.py).

    A study with flags of its own (experiments/removal.py) passes `check(config)`, which raises
    ValueError naming a bad flag (called before TensorFlow is imported), and `train`, which
    runs it in place of the suite (see `runner.run_command`).
    """
    argv = list(sys.argv if argv is None else argv)
    config_lib.flags_from_config(defaults)
    help_wanted = _help_wanted(argv[1:])
    if help_wanted:
        _exit_with_help(full=help_wanted in FULL_HELP)
    config = parse(argv, check)
    backend.select(config.backend)  # before anything imports Keras 3
    quiet = not flags.FLAGS["verbosity"].present
    runner = start_tensorflow(quiet)

    def run(_):
        if quiet:
            for name in NOISY_LOGGERS:
                python_logging.getLogger(name).setLevel(python_logging.ERROR)
        runner.run_command(config, suite_dataset=defaults.dataset, train=train)

    app.run(run, argv=argv[:1])  # absl's set-up: its log handler, --run_with_pdb and the like


def parse(argv, check=None) -> config_lib.ExperimentConfig:
    """The config the command line describes; refuses a bad one (exit 2, naming the flag).
    `check(config)`: a study's own checks, raising ValueError naming the flag; it may return
    the config to run instead (experiments/transfer.py derives its from the source's)."""
    try:
        rest = flags.FLAGS(argv)
    except flags.UnrecognizedFlagError as e:
        refuse(f"{e.flagvalue}: unknown flag{_suggestion(e)}; --help lists the flags")
    except (flags.Error, ValueError) as e:  # absl raises ValueError for --noflag=value
        refuse(str(e).removeprefix("flag "))
    if len(rest) > 1:
        refuse(f"unexpected arguments {rest[1:]}: flags take the form --flag=value")
    try:
        config = config_lib.config_from_flags()
        config_lib.validate(config)
        if check is not None:
            config = check(config) or config  # a study may derive the config it runs (a transfer's)
    except ValueError as e:
        refuse(str(e))
    return config


def _suggestion(error: flags.UnrecognizedFlagError) -> str:
    """absl's "Did you mean" of an unknown flag, as flags: " (did you mean --prune_iters?)"."""
    _, _, tip = str(error).partition("Did you mean: ")
    names = [name.strip(" ?") for name in tip.split(",") if name.strip(" ?")]
    return f" (did you mean {' or '.join('--' + name for name in names)}?)" if names else ""


def refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def _help_wanted(args) -> str:
    """The help flag among `args` (before a `--`), or ''."""
    for arg in args:
        if arg == "--":
            break
        if arg in SHORT_HELP + FULL_HELP:
            return arg
    return ""


# --- TensorFlow, quietly -------------------------------------------------------------


def start_tensorflow(quiet: bool):
    """Imports the runner (and TensorFlow) and probes the devices; returns the runner module.

    Quiet: TensorFlow's start-up lines (oneDNN, CUDA stubs, cuInit on a machine without a
    GPU, absl's note on its own logging) are written by its C++ code straight to file
    descriptor 2, before any setting could stop them; they are held back, and shown only if
    the start fails.
    """
    with _stderr_held_back(quiet):
        from experiments import runner
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe, while held back; configures nothing
    return runner


@contextlib.contextmanager
def _stderr_held_back(enabled: bool):
    """Sends file descriptor 2 to a temporary file while inside; replays it if that raises."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore_stderr(saved)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        _restore_stderr(saved)


def _restore_stderr(saved: int) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


# --- help ----------------------------------------------------------------------------


def _exit_with_help(full: bool) -> None:
    """Prints the suite's flags by group (and with `full`, absl's and TensorFlow's); exits 0.

    --help stays free of TensorFlow (it takes seconds to import); --helpfull imports it, for
    TensorFlow's flags and for --control's branches, whose registry (experiments/branches.py)
    needs it.
    """
    if not full:
        print(suite_help())
        sys.exit(0)
    runner = start_tensorflow(quiet=True)
    print(suite_help(control_help=runner.branches.flag_help()))
    print(other_flags_help())
    sys.exit(0)


def suite_help(control_help: str = "") -> str:
    """Usage, the suite's docstring and its flags by config group, with the suite's defaults."""
    main_module = sys.modules["__main__"]
    spec = getattr(main_module, "__spec__", None)
    program = f"python -m {spec.name}" if spec else os.path.basename(sys.argv[0])
    lines = [f"usage: {program} [--flag=value ...]", "", (main_module.__doc__ or "").strip(), ""]
    for group in config_lib.GROUPS:
        summary = group.__doc__.splitlines()[0].rstrip(".")
        lines.append(f"{group.__name__.removesuffix('Settings')} ({summary[0].lower()}{summary[1:]})")
        for field in dataclasses.fields(group):
            flag = flags.FLAGS[field.name]
            text = control_help if field.name == "control" and control_help else flag.help
            lines += _flag_lines(flag, text)
        lines.append("")
    lines.append(
        "Output: quiet by default; -v/--verbosity=0 shows TensorFlow's start-up lines and INFO logs."
    )
    lines.append("--helpfull also describes each --control branch and lists absl's and TensorFlow's flags.")
    return "\n".join(lines)


def _flag_lines(flag, text: str):
    name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
    default = "" if flag.default is None else f" (default: {flag.default_as_str})"
    return flags.text_wrap(f"{name}: {text}{default}", indent="      ", firstline_indent="  ").splitlines()


def other_flags_help() -> str:
    """The flags of every module but the suites' config (absl's, TensorFlow's), as absl lists them."""
    ours = set(config_lib.RUN_FIELDS + config_lib.COMPUTED_FIELDS)
    modules = flags.FLAGS.flags_by_module_dict()
    others = [m for m, module_flags in sorted(modules.items()) if not ours & {f.name for f in module_flags}]
    return "\n".join(flags.FLAGS.module_help(module) for module in others)
