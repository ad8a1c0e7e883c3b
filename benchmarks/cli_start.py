"""How long a refused command line takes, beside Python's own start and TensorFlow's import.

    python -m benchmarks.cli_start [--suite=conv6] [--repeats=5]

Each variant is a fresh process started from the repository root and timed from start to
exit: "python" is `python -c pass`; "unknown flag" is `python -m experiments.<suite>
--prune_iter=3` and "out of range" the suite with `--prune_rate=1.5`, both refused with exit
code 2 before TensorFlow is imported (experiments/cli.py); "import tensorflow" is `python
-c "import tensorflow"`, what every refusal paid before; "help" is the suite's `--help`,
also without TensorFlow. Interleaved, in one run. The target: a refusal well under 1.5 s.
"""

import os
import subprocess
import sys

from absl import app, flags

from benchmarks import timing

flags.DEFINE_string("suite", "conv6", "A suite of experiments/ to refuse flags of.")
flags.DEFINE_integer("repeats", 5, "Measurements per variant.")
FLAGS = flags.FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_SECONDS = 1.5


def process(args, exit_code: int):
    """A variant: runs `python <args>` and returns its seconds; raises if it exits otherwise."""

    def run() -> float:
        result = {}
        seconds = timing.timed(
            lambda: result.update(
                done=subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
            )
        )
        if result["done"].returncode != exit_code:
            raise RuntimeError(f"{args} exited {result['done'].returncode}: {result['done'].stderr[-2000:]}")
        return seconds

    return run


def main(argv):
    del argv
    suite = ["-m", f"experiments.{FLAGS.suite}"]
    samples = timing.interleaved(
        {
            "python": process(["-c", "pass"], 0),
            "unknown flag": process([*suite, "--prune_iter=3"], 2),
            "out of range": process([*suite, "--prune_rate=1.5"], 2),
            "import tensorflow": process(["-c", "import tensorflow"], 0),
            "help": process([*suite, "--help"], 0),
        },
        FLAGS.repeats,
    )
    print(f"experiments.{FLAGS.suite}, seconds from start to exit, {FLAGS.repeats} repeats:")
    for name, values in samples.items():
        print(f"  {name:18s} {timing.summary(values, unit=' s')}")
    tensorflow = samples["import tensorflow"]
    for refusal in ("unknown flag", "out of range"):
        slowest = max(samples[refusal])
        verdict = "<" if slowest < TARGET_SECONDS else ">="
        print(f"  {refusal}: slowest {slowest:.3f} s {verdict} {TARGET_SECONDS} s")
        print(f"    {refusal}/python {timing.ratio(samples[refusal], samples['python'])}")
        print(f"    {refusal}/(import tensorflow) {timing.ratio(samples[refusal], tensorflow)}")
    print(f"  help/(import tensorflow) {timing.ratio(samples['help'], tensorflow)}")


if __name__ == "__main__":
    app.run(main)
