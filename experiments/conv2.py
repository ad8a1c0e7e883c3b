"""Conv-2 on CIFAR-10 (Frankle & Carbin 2019).

python -m experiments.conv2 --prune_iters=20
"""

from experiments import runner
from experiments.config import ExperimentConfig

DEFAULTS = ExperimentConfig(
    model="conv2",
    dataset="cifar10",
    iterations=20000,
    batch_size=60,
    optimizer="adam",
    learning_rate=2e-4,
    prune_rate=0.2,
    conv_prune_rate=0.1,
    # XLA made Conv-6 slower on this 2-core CPU (benchmarks/step_time.py, README "Speed"),
    # and compiling a VGG step takes over a minute there: off for the conv suites by default.
    jit_compile=False,
)

if __name__ == "__main__":
    runner.main(DEFAULTS)
