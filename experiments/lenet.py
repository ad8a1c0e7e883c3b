"""LeNet-300-100 on MNIST (Frankle & Carbin 2019).

python -m experiments.lenet --prune_iters=20
"""

from experiments import cli
from experiments.config import ExperimentConfig

DEFAULTS = ExperimentConfig(
    model="lenet",
    dataset="mnist",
    iterations=50000,
    batch_size=60,
    optimizer="adam",
    learning_rate=1.2e-3,
    prune_rate=0.2,
)

if __name__ == "__main__":
    cli.main(DEFAULTS)
