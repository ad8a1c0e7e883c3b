"""Conv-6 on CIFAR-10 (Frankle & Carbin 2019): Conv-2's recipe, 30K iterations, Adam 3e-4,
convolutions pruned 15% per round.

    python -m experiments.conv6 --prune_iters=20
"""

import dataclasses

from experiments import cli
from experiments.conv2 import DEFAULTS as CONV2_DEFAULTS

DEFAULTS = dataclasses.replace(
    CONV2_DEFAULTS, model="conv6", iterations=30000, learning_rate=3e-4, conv_prune_rate=0.15
)

if __name__ == "__main__":
    cli.main(DEFAULTS)
