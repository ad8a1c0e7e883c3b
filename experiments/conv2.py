"""Conv-2 on CIFAR-10 (Frankle & Carbin 2019).

python -m experiments.conv2 --prune_iters=20
"""

from experiments import cli
from experiments.config import CONV_SPEED_ON_CPU, ExperimentConfig

DEFAULTS = ExperimentConfig(
    model="conv2",
    dataset="cifar10",
    iterations=20000,
    batch_size=60,
    optimizer="adam",
    learning_rate=2e-4,
    prune_rate=0.2,
    conv_prune_rate=0.1,
    **CONV_SPEED_ON_CPU,
)

if __name__ == "__main__":
    cli.main(DEFAULTS)
