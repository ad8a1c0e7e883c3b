"""Ticket removal (seed 003): after removing winning tickets, does the dense network still
train, and how many winning tickets does it hold?

python -m experiments.removal --dataset=fashion_mnist --prune_iters=6 --iterations=3000 --removals=3

Finds ticket 0 by iterative magnitude pruning down to round --prune_iters (the target
sparsity: the round table prints its weights remaining), then --removals times: re-initialises
the last ticket's surviving weights in the dense network (fresh draws from each layer's
initializer, seeded by --seed and the removal; every other weight keeps the dense network's
θ₀), trains the dense network again and prunes it to the same round: the next ticket. Prints
per ticket its dense network's test accuracy and early-stop iteration, the ticket's, and its
mask's Jaccard overlap with every earlier ticket's, then a verdict line.

Ticket 0 is the experiment's own ticket (python -m experiments.lenet with the same flags finds
the same one, and reuses it), ticket k the branch removal_<k>; each is resumable, in
TensorBoard and in python -m experiments.report. LeNet-300-100's defaults (MNIST);
--removals (default 3) is this study's own flag.
"""

from absl import flags

from experiments import cli
from experiments.lenet import DEFAULTS


def check(config, removals: int) -> None:
    """Raises ValueError naming a flag the study cannot take (before TensorFlow is imported)."""
    if isinstance(removals, bool) or not isinstance(removals, int) or removals < 1:
        raise ValueError(f"--removals={removals!r}: must be an integer >= 1")
    if config.control != "none":
        raise ValueError(
            f"--control={config.control!r}: the removal study finds tickets (--control=none); "
            "run a control with the suite's own command"
        )
    if not config.one_shot and config.prune_iters < 1:
        raise ValueError(
            f"--prune_iters={config.prune_iters}: the ticket removed is round --prune_iters, "
            "so it must be >= 1 (round 0 is the dense network)"
        )


def _train(config, suite_dataset: str) -> None:
    from experiments import removal_study  # TensorFlow: imported only once the flags are good

    removal_study.run_study(config, flags.FLAGS.removals, suite_dataset)


def main(defaults=DEFAULTS, argv=None) -> None:
    """The study's command line: the suite's flags and --removals."""
    flags.DEFINE_integer("removals", 3, "How many times a ticket is removed and the next one found.")
    cli.main(defaults, argv, check=lambda config: check(config, flags.FLAGS.removals), train=_train)


if __name__ == "__main__":
    main()
