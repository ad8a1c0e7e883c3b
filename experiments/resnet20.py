"""ResNet-20 on CIFAR-10 (Frankle et al. 2019/2020, late rewinding): 160 epochs of batch 128
(62,500 iterations), SGD 0.1 momentum 0.9, drops at epochs 80/120, weight decay 1e-4,
rewinding to iteration 500. Convolutions pruned 20% per round globally.

    python -m experiments.resnet20 --prune_iters=20
"""

from experiments import cli
from experiments.config import CONV_SPEED_ON_CPU, ExperimentConfig

DEFAULTS = ExperimentConfig(
    model="resnet20",
    dataset="cifar10",
    iterations=62500,
    batch_size=128,
    optimizer="sgd",
    learning_rate=0.1,
    lr_drops=(31250, 46875),
    weight_decay=1e-4,
    augment=True,
    rewind_step=500,
    prune_rate=0.0,
    output_prune_rate=0.0,
    conv_prune_rate=0.2,
    scope="global",
    **CONV_SPEED_ON_CPU,
)

if __name__ == "__main__":
    cli.main(DEFAULTS)
