"""Ticket removal (seed 003, issue 18 item 2): after removing winning tickets, does the dense
network still train, and does it still hold a winning ticket?

Ticket 0 is the experiment's own ticket (branch `ticket`): iterative magnitude pruning down
to round `target` (--prune_iters). Removal k re-initialises ticket k-1's surviving weights in
the dense network it was found in (`lth_keras.remove_ticket`: fresh draws from each layer's
initializer, seeded; every other weight keeps that network's θ₀), and the dense network so
made is pruned again to round `target`: ticket k (branch `removal_<k>`). Each ticket is an
ordinary ticket run of the experiment (files, resuming, TensorBoard), so removal k's θ₀ is
its run's theta_0.npz and removals accumulate.

`summary` reads a stored study back: per ticket, its dense network's test accuracy and
early-stop iteration (round 0), the ticket's at the target round, and the Jaccard overlap of
its mask with every earlier ticket's; `table`, `verdict` and `plot` show them.
"""

import functools
import math
import os
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from experiments import branches, layout, progress, runner
from lth_keras import adapters, controls, storage
from lth_keras.masks import Masks, check_same_keys
from lth_keras.paper import report
from lth_keras.snapshots import WeightSnapshot

Pair = Tuple[Optional[float], Optional[float]]  # (mean, std) over replicates; std None from one


def target_round(config) -> int:
    """The round whose mask is the ticket removed: --prune_iters (1 when --one_shot)."""
    return 1 if config.one_shot else config.prune_iters


def branch_name(k: int) -> str:
    """The branch of ticket k: the experiment's ticket, then `removal_<k>`."""
    return branches.TICKET.name if k == 0 else f"removal_{k}"


def removal_seed(seed: int, k: int) -> int:
    """The seed of removal k's redraws in the replicate of seed `seed`."""
    return seed + k


# --- mask overlap ----------------------------------------------------------------------


def _kept(mask) -> np.ndarray:
    return np.asarray(mask) > 0


def jaccard(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    """|a ∩ b| / |a ∪ b| of the weights two sets of masks keep, over all their masks (1.0 when
    neither keeps any). Raises ValueError when their keys differ."""
    check_same_keys(a, b, "the two sets of masks")
    both = sum(np.count_nonzero(_kept(a[k]) & _kept(b[k])) for k in a)
    either = sum(np.count_nonzero(_kept(a[k]) | _kept(b[k])) for k in a)
    return both / either if either else 1.0


def chance_jaccard(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    """The overlap random masks with a's and b's per-mask counts have: expected |a ∩ b| over
    expected |a ∪ b| (n_a n_b / n per mask), the level an unrelated ticket shows."""
    check_same_keys(a, b, "the two sets of masks")
    both = sum(np.count_nonzero(_kept(a[k])) * np.count_nonzero(_kept(b[k])) / np.size(a[k]) for k in a)
    either = sum(np.count_nonzero(_kept(a[k])) + np.count_nonzero(_kept(b[k])) for k in a) - both
    return both / either if either else 1.0


# --- running it ------------------------------------------------------------------------


def _start_after_removal(k: int, target: int, model, experiment: str, replicate: int, seed: int) -> None:
    """Removal k's dense network: ticket k-1's network's θ₀ with ticket k-1's survivors redrawn."""
    previous = layout.run_dir(experiment, branch_name(k - 1), replicate)
    theta_path = layout.theta_file(previous, "theta_0")
    with progress.reading(theta_path, f"re-run with --overwrite to start the study anew ({experiment})"):
        theta_0 = WeightSnapshot.load(theta_path)
    round_directory = layout.round_dir(previous, target)
    with progress.reading(layout.masks_file(round_directory), progress.redo_from(round_directory)):
        masks = Masks.load(round_directory)
    adapters.for_model(model).restore_snapshot(model, theta_0)
    controls.remove_ticket(model, masks, seed=removal_seed(seed, k))


def removal_branch(k: int, target: int) -> branches.Branch:
    """Ticket k's branch: a ticket run whose dense network had tickets 0..k-1 removed."""
    if k == 0:
        return branches.TICKET
    initialize = functools.partial(_start_after_removal, k, target)
    return branches.Branch(
        branch_name(k),
        "none",
        f"the ticket found after {k} removal(s)",
        "-.",
        functools.partial(branches.run_ticket, initialize=initialize),
        branches.preflight_ticket,
        label=f"ticket after {k} removal(s)",
    )


def check_stored_target(experiment: str, target: int, overwrite: bool) -> None:
    """Refuses a study stored with tickets at another round (its removals removed other masks)."""
    path = layout.removal_file(experiment)
    if overwrite or not os.path.exists(path):
        return
    with progress.reading(path, f"delete it (and the removal_<k> branches of {experiment})"):
        stored = storage.load_json(path)["target_round"]
    if stored != target:
        raise ValueError(
            f"--prune_iters={target}: {experiment} holds a removal study whose tickets are round "
            f"{stored} (its removals re-initialised those masks); pass --prune_iters={stored}, "
            "another --output_dir, or --overwrite to start anew"
        )


def run_study(config, removals: int, suite_dataset: str = "") -> List["Removal"]:
    """Finds ticket 0, then removes and re-finds `removals` times (each step resumable);
    prints and returns the summary."""
    resolved = runner.resolve(config)
    experiment, target = layout.experiment_dir(resolved), target_round(resolved)
    check_stored_target(experiment, target, config.overwrite)
    for k in range(removals + 1):
        runner.train_and_evaluate(config, suite_dataset, branch=removal_branch(k, target))
        if k == 0:  # the experiment exists now (and --overwrite has cleared the old study)
            storage.save_json(layout.removal_file(experiment), {"target_round": target})
    found = summary(experiment)[: removals + 1]
    print(text(os.path.basename(experiment), found))
    return found


# --- reading it back -------------------------------------------------------------------


class Removal(NamedTuple):
    """Ticket k of a study, over the replicates that found it."""

    ticket: int  # how many tickets were removed before it was found
    dense: dict  # report.aggregate row of its dense network (round 0)
    found: dict  # report.aggregate row of the ticket (the target round)
    overlaps: List[Pair]  # Jaccard with ticket 0, 1, ..., ticket - 1
    chance: float  # the mean overlap random masks of the same counts would have


def _mean_std(values: List[float]) -> Pair:
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else None


def stored_target(experiment: str) -> Optional[int]:
    """The target round of the experiment's removal study; None if it has none."""
    path = layout.removal_file(experiment)
    if not os.path.exists(path):
        return None
    with progress.reading(path, "delete it to report the experiment without its removal study"):
        return int(storage.load_json(path)["target_round"])


def _tickets_of_replicate(experiment: str, replicate: int, target: int):
    """(records, masks at the target round) of tickets 0, 1, ... of one replicate, up to the
    first that has not reached the target round."""
    found = []
    while True:
        run = layout.run_dir(experiment, branch_name(len(found)), replicate)
        records = progress.finished_rounds(run) if os.path.isdir(run) else []
        if len(records) <= target:
            return found
        round_directory = layout.round_dir(run, target)
        with progress.reading(layout.masks_file(round_directory), progress.redo_from(round_directory)):
            found.append((records, Masks.load(round_directory)))


def summary(experiment: str) -> List[Removal]:
    """Each ticket of the experiment's removal study that some replicate found; [] if none."""
    target = stored_target(experiment)
    if target is None:
        return []
    ticket_runs = layout.replicate_dirs(layout.branch_dir(experiment, branch_name(0)))
    replicates = [_tickets_of_replicate(experiment, r, target) for r in range(len(ticket_runs))]
    removals = []
    for k in range(max((len(found) for found in replicates), default=0)):
        having = [found for found in replicates if len(found) > k]
        records = [found[k][0] for found in having]
        overlaps = [_mean_std([jaccard(found[k][1], found[j][1]) for found in having]) for j in range(k)]
        chance = [chance_jaccard(found[k][1], found[j][1]) for found in having for j in range(k)]
        removals.append(
            Removal(
                k,
                report.aggregate([r[:1] for r in records])[0],
                report.aggregate([[r[target]] for r in records])[0],
                overlaps,
                float(np.mean(chance)) if chance else math.nan,
            )
        )
    return removals


# --- showing it ------------------------------------------------------------------------


def _cell(pair: Pair, scale: float = 1.0, digits: int = 2) -> str:
    mean, std = pair
    if mean is None:
        return ""
    return f"{scale * mean:.{digits}f}" + ("" if std is None else f" ± {scale * std:.{digits}f}")


def table(removals: List[Removal]) -> str:
    """A Markdown table, one row per ticket: its dense network and itself (test accuracy at
    the early-stop step, the step) and its Jaccard overlap with each earlier ticket."""
    earlier = len(removals) - 1
    header = ["ticket (= removals before it)", "dense acc. @ early stop (%)", "dense early-stop it."]
    header += ["ticket acc. @ early stop (%)", "ticket early-stop it."]
    header += [f"Jaccard with ticket {j}" for j in range(earlier)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for r in removals:
        cells = [str(r.ticket)]
        cells += [_cell(r.dense["early_stop_accuracy"], 100), _cell(r.dense["early_stop_step"], 1, 0)]
        cells += [_cell(r.found["early_stop_accuracy"], 100), _cell(r.found["early_stop_step"], 1, 0)]
        cells += [_cell(pair) for pair in r.overlaps] + [""] * (earlier - len(r.overlaps))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _matches(r: Removal) -> bool:
    """Does the ticket match its own dense network: at least its accuracy minus one std over
    replicates (0.5 pp from one replicate), the report's rule for the paper's verdict."""
    ticket, dense = r.found["early_stop_accuracy"], r.dense["early_stop_accuracy"]
    if ticket[0] is None or dense[0] is None:
        return False
    tolerance = dense[1] if dense[1] is not None else report.SINGLE_REPLICATE_TOLERANCE
    return ticket[0] >= dense[0] - tolerance


def verdict(name: str, removals: List[Removal]) -> str:
    """One line: how the dense network trains after the removals, how many tickets still match
    their dense network, and how much the tickets overlap (against random masks)."""
    if len(removals) < 2:
        return f"{name}: no removal finished yet, no verdict"
    first, last = removals[0], removals[-1]
    dense_0, dense_k = (100 * r.dense["early_stop_accuracy"][0] for r in (first, last))
    matching = [r.ticket for r in removals if _matches(r)]
    overlaps = [pair[0] for r in removals for pair in r.overlaps]
    chance = float(np.mean([r.chance for r in removals[1:]]))
    spread = f"{min(overlaps):.2f}" + (f"-{max(overlaps):.2f}" if len(overlaps) > 1 else "")
    return (
        f"{name}: after {last.ticket} removal{'s' * (last.ticket > 1)} the dense network trains to "
        f"{dense_k:.2f}% "
        f"({dense_k - dense_0:+.2f} pp from {dense_0:.2f}%) and {len(matching)} of {len(removals)} "
        f"tickets match their dense network at {100 * last.found['weights_remaining']:.1f}% of "
        f"weights remaining ({'every one' if len(matching) == len(removals) else f'tickets {matching}'}); "
        f"a new ticket overlaps earlier ones by Jaccard {spread} "
        f"(random masks of its size: {chance:.2f})"
    )


def text(name: str, removals: List[Removal]) -> str:
    """The study's lines: what the tickets are, the table and the verdict."""
    if not removals:
        return f"{name}: no ticket of the removal study has reached its target round yet"
    where = 100 * removals[0].found["weights_remaining"]
    head = (
        f"Ticket removal: tickets at round {removals[0].found['round']} ({where:.2f}% of weights remaining)"
    )
    return "\n\n".join([head, table(removals), verdict(name, removals)])


def plot(studies: Mapping[str, List[Removal]], titles: Optional[Dict[str, str]] = None):
    """One row per experiment: test accuracy of the dense network and of its ticket vs tickets
    removed (±1 std bands where there is a std), and each ticket's Jaccard overlap with every
    earlier one against random masks' level. None if no study has a ticket."""
    shown = {name: removals for name, removals in studies.items() if removals}
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, grid = pyplot.subplots(len(shown), 2, figsize=(11, 4.2 * len(shown)), squeeze=False)
    for (accuracy, overlap), (name, removals) in zip(grid, shown.items()):
        _draw_accuracy(accuracy, removals)
        _draw_overlaps(overlap, removals)
        title = (titles or {}).get(name) or name
        accuracy.set_title(f"{title}: ticket removal", loc="left", fontsize=10)
        overlap.set_title(name, loc="right", fontsize=7, color="0.3")
    figure.tight_layout()
    return figure


def _draw_accuracy(axes, removals: List[Removal]) -> None:
    x = np.array([r.ticket for r in removals])
    where = 100 * removals[0].found["weights_remaining"]
    for label, key, style in (
        ("dense network", "dense", "-"),
        (f"ticket ({where:.1f}% remaining)", "found", "--"),
    ):
        pairs = [getattr(r, key)["early_stop_accuracy"] for r in removals]
        y = np.array([math.nan if m is None else 100 * m for m, _ in pairs])
        std = np.array([0.0 if s is None else 100 * s for _, s in pairs])
        line = axes.plot(x, y, linestyle=style, marker="o", markersize=4, label=label)[0]
        if std.any():
            axes.fill_between(x, y - std, y + std, color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xticks(x)
    axes.set_xlabel("tickets removed before training")
    axes.set_ylabel("test accuracy at early stop (%)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)


def _draw_overlaps(axes, removals: List[Removal]) -> None:
    later = removals[1:]
    for j in range(len(later)):
        points = [(r.ticket, r.overlaps[j][0]) for r in later if len(r.overlaps) > j]
        axes.plot(*zip(*points), marker="o", markersize=4, label=f"with ticket {j}")
    if later:
        axes.plot(
            [r.ticket for r in later],
            [r.chance for r in later],
            color="0.45",
            linestyle=":",
            label="random masks",
        )
        axes.set_xticks([r.ticket for r in later])
        axes.legend(fontsize=8)
    axes.set_xlabel("ticket (= tickets removed before it)")
    axes.set_ylabel("Jaccard overlap of masks")
    axes.set_ylim(0, 1)
    axes.grid(True, alpha=0.3)
