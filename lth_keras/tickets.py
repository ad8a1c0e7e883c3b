"""A found ticket on disk, and putting it on a model.

This module alone names and writes the files of a ticket. A ticket is a directory:

    masks.npz       which weights survive
    theta_0.npz     the weights the survivors rewind to (the original initialisation)
    theta_k.npz     the early iterate they rewind to instead, when one was captured
    rounds.json     the records of the rounds that found it, oldest first; written last

`LotteryTicketCallback.save(directory)` writes one, and every finished round of an
experiment's run (`<run>/round_<n>/`) is one, so `load_ticket` and `apply_ticket` work on both.
"""

import dataclasses
import os
import shutil
from typing import Any, Callable, Dict, List, Mapping, Optional

from lth_keras import adapters, storage
from lth_keras.masks import MASKS_FILE, Masks
from lth_keras.snapshots import WeightSnapshot
from lth_keras.validation import check_choice

THETAS = ("theta_0", "theta_k")
ROUNDS_FILE = "rounds.json"


def theta_file(directory: str, name: str) -> str:
    """The file of θ `name` ('theta_0' or 'theta_k') in `directory`."""
    check_choice(name, THETAS, "name")
    return os.path.join(directory, f"{name}.npz")


def masks_file(directory: str) -> str:
    return os.path.join(directory, MASKS_FILE)


def rounds_file(directory: str) -> str:
    """The ticket's round records; its presence marks a round of a run finished."""
    return os.path.join(directory, ROUNDS_FILE)


@dataclasses.dataclass
class Ticket:
    """What a lottery run found: the masks and the weights to rewind the survivors to."""

    masks: Masks
    theta_0: Optional[WeightSnapshot]
    theta_k: Optional[WeightSnapshot] = None
    rounds: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


def save_ticket(
    directory: str,
    ticket: Ticket,
    theta_sources: Optional[Mapping[str, str]] = None,
    on_written: Callable[[str], None] = lambda path: None,
) -> None:
    """Writes the ticket's files into `directory`, each atomically, the round records last.

    theta_sources: θ name -> a file already holding it (a run's theta_0.npz), linked
      instead of written again, so a run's rounds share one copy on disk.
    on_written: called with each file's path once it is complete (a run records it).
    """
    theta_sources = dict(theta_sources or {})
    on_written(ticket.masks.save(directory))
    for name in THETAS:
        target = theta_file(directory, name)
        if name in theta_sources:
            link_or_copy(theta_sources[name], target)
        elif getattr(ticket, name) is not None:
            getattr(ticket, name).save(target)
        else:
            continue
        on_written(target)
    path = rounds_file(directory)
    storage.save_json(path, ticket.rounds)
    on_written(path)


def link_or_copy(source: str, target: str) -> None:
    """Hard-links `source` to `target` (replacing it), or copies it where links are not supported."""
    tmp_path = os.path.join(os.path.dirname(target), ".tmp-link-" + os.path.basename(target))
    if os.path.exists(tmp_path):
        os.remove(tmp_path)
    try:
        os.link(source, tmp_path)
    except OSError:
        shutil.copyfile(source, tmp_path)
    os.replace(tmp_path, target)


def load_rounds(directory: str) -> List[Dict[str, Any]]:
    """The round records of the ticket in `directory`; raises ValueError naming a bad file."""
    path = rounds_file(directory)
    rounds = storage.load_json(path)
    if not isinstance(rounds, list) or not all(isinstance(r, dict) and "round" in r for r in rounds):
        raise ValueError(f"{path} does not hold round records")
    return rounds


def load_ticket(directory: str) -> Ticket:
    """Reads a ticket: a directory written by `save_ticket`, or any finished round of a run."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no ticket directory at {directory}")
    if not os.path.exists(masks_file(directory)):
        raise FileNotFoundError(f"{directory} is not a ticket: it has no {MASKS_FILE}")

    def optional_snapshot(name):
        path = theta_file(directory, name)
        return WeightSnapshot.load(path) if os.path.exists(path) else None

    return Ticket(
        masks=Masks.load(directory),
        theta_0=optional_snapshot("theta_0"),
        theta_k=optional_snapshot("theta_k"),
        rounds=load_rounds(directory) if os.path.exists(rounds_file(directory)) else [],
    )


def apply_ticket(model, ticket: Ticket, weights: str = "theta_0") -> None:
    """Sets the ticket's masks on `model` and its surviving weights to θ₀ or θ_k.

    Raises ValueError naming the layer when the ticket does not fit the model.
    """
    check_choice(weights, THETAS, "weights")
    snapshot = getattr(ticket, weights)
    if snapshot is None:
        raise ValueError(f"the ticket has no {weights} to rewind to")
    adapter = adapters.for_model(model)
    adapter.set_masks(model, ticket.masks)
    adapter.restore_snapshot(model, snapshot)
