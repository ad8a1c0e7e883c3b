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
    # On this 2-core CPU XLA made Conv-6 slower (benchmarks/step_time.py, README "Speed"),
    # compiling a VGG step took over a minute, and XLA's loop of fused steps ran Conv-2 85x
    # slower (11 s a step): both off for the conv suites by default.
    jit_compile=False,
    fused_steps=False,
)

if __name__ == "__main__":
    runner.main(DEFAULTS)
