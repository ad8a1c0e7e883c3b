"""VGG-16 on CIFAR-10 (Frankle et al. 2020, late rewinding): the ResNet-20 training recipe,
rewinding to iteration 1000. Convolutions pruned 20% per round globally.

    python -m experiments.vgg16 --prune_iters=20
"""

import dataclasses

from experiments import cli
from experiments.resnet20 import DEFAULTS as RESNET20_DEFAULTS

DEFAULTS = dataclasses.replace(RESNET20_DEFAULTS, model="vgg16", rewind_step=1000)

if __name__ == "__main__":
    cli.main(DEFAULTS)
