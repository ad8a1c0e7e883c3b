"""VGG-19 on CIFAR-10 (Frankle & Carbin 2019), with linear warmup over 10K iterations at lr 0.1
(the setting that finds tickets): ResNet-18's recipe with 112K iterations of batch 64 and
drops at epochs 80 and 120 (703 iterations an epoch).

    python -m experiments.vgg19 --prune_iters=20
"""

import dataclasses

from experiments import cli
from experiments.resnet18 import DEFAULTS as RESNET18_DEFAULTS

DEFAULTS = dataclasses.replace(
    RESNET18_DEFAULTS,
    model="vgg19",
    iterations=112000,
    batch_size=64,
    learning_rate=0.1,
    warmup=10000,
    lr_drops=(56240, 84360),
)

if __name__ == "__main__":
    cli.main(DEFAULTS)
