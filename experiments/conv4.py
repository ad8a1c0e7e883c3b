"""Conv-4 on CIFAR-10 (Frankle & Carbin 2019): Conv-2's recipe, 25K iterations, Adam 3e-4.

python -m experiments.conv4 --prune_iters=20
"""

import dataclasses

from experiments import cli
from experiments.conv2 import DEFAULTS as CONV2_DEFAULTS

DEFAULTS = dataclasses.replace(CONV2_DEFAULTS, model="conv4", iterations=25000, learning_rate=3e-4)

if __name__ == "__main__":
    cli.main(DEFAULTS)
