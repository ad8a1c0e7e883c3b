"""ResNet-18 (CIFAR) on CIFAR-10 (Frankle & Carbin 2019), with the warmup that finds tickets:
lr 0.03 with 20K iterations of warmup (the paper's plain setting is --learning_rate=0.1
--warmup=0). 30K iterations of batch 128, drops at 20K and 25K. Convolutions pruned 20% per
round globally; the fc layer is not pruned. The network is the same as ResNet-20.

    python -m experiments.resnet18 --prune_iters=20
"""

import dataclasses

from experiments import cli
from experiments.resnet20 import DEFAULTS as RESNET20_DEFAULTS

DEFAULTS = dataclasses.replace(
    RESNET20_DEFAULTS,
    model="resnet18",
    iterations=30000,
    learning_rate=0.03,
    warmup=20000,
    lr_drops=(20000, 25000),
    weight_decay=0.0,
    rewind_step=0,
)

if __name__ == "__main__":
    cli.main(DEFAULTS)
