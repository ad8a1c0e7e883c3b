"""The suites on one Keras 3 backend, in one process (Keras 3 runs one backend per process).

python -m tests.helpers.backend_runs BACKEND OUTPUT_DIR

Into OUTPUT_DIR/suites: LeNet's ticket and every registered control, then Conv-2, Conv-4 and Conv-6,
each --smoke on synthetic data. Into OUTPUT_DIR/reference: the small LeNet of
tests/helpers/lenet_runs.py with dropout 0.5, uninterrupted, as `run_lenet` would write it
(the tests SIGKILL the same run and compare). Prints one line per finished run.
"""

import dataclasses
import importlib
import os
import sys


def main():
    backend, output_dir = sys.argv[1], sys.argv[2]
    os.environ["KERAS_BACKEND"] = backend  # before anything imports Keras 3
    from experiments import runner
    from experiments.branches import BRANCHES
    from tests.helpers.lenet_runs import SMALL_LENET

    suites = os.path.join(output_dir, "suites")
    for suite, controls in (("lenet", tuple(BRANCHES)), ("conv2", ("none",))):
        defaults = importlib.import_module(f"experiments.{suite}").DEFAULTS
        for control in controls:
            config = dataclasses.replace(
                defaults, dataset="synthetic", smoke=True, backend=backend, control=control, output_dir=suites
            )
            runner.train_and_evaluate(config, suite_dataset=defaults.dataset)
            print(f"finished {suite} {control}")
    for suite in ("conv4", "conv6"):
        defaults = importlib.import_module(f"experiments.{suite}").DEFAULTS
        config = dataclasses.replace(
            defaults, dataset="synthetic", smoke=True, backend=backend, output_dir=suites
        )
        runner.train_and_evaluate(config, suite_dataset=defaults.dataset)
        print(f"finished {suite} none")
    reference = dataclasses.replace(
        SMALL_LENET,
        prune_iters=2,
        deterministic=True,
        dropout=0.5,
        backend=backend,
        output_dir=os.path.join(output_dir, "reference"),
    )
    runner.train_and_evaluate(reference)
    print("finished reference")


if __name__ == "__main__":
    main()
