"""ResNet-18 (CIFAR) on CIFAR-10 (Frankle & Carbin 2019), with the warmup that finds tickets:
lr 0.03 with 20K iterations of warmup (the paper's plain setting is --learning_rate=0.1 --warmup=0).
Convolutions pruned 20% per round globally; the fc layer is not pruned.

    python -m experiments.resnet18 --prune_iters=20
"""

from experiments import runner
from experiments.config import ExperimentConfig

DEFAULTS = ExperimentConfig(
    model="resnet18", dataset="cifar10", iterations=30000, batch_size=128,
    optimizer="sgd", learning_rate=0.03, warmup=20000, lr_drops=(20000, 25000), augment=True,
    prune_rate=0.0, output_prune_rate=0.0, conv_prune_rate=0.2, scope="global",
)

if __name__ == "__main__":
    runner.main(DEFAULTS)
