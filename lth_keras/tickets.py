"""A found ticket on disk: masks, θ₀, θ_k and round records, and putting it on a model.

This module names every file a saved ticket consists of.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional

from lth_keras import storage
from lth_keras.masks import MASKS_FILE, Masks
from lth_keras.model_state import WeightSnapshot, restore_snapshot, set_masks
from lth_keras.validation import check_choice

THETA_0_FILE = "theta_0.npz"
THETA_K_FILE = "theta_k.npz"
ROUNDS_FILE = "rounds.json"
FILES = (MASKS_FILE, THETA_0_FILE, THETA_K_FILE, ROUNDS_FILE)


@dataclasses.dataclass
class Ticket:
    """What a lottery run found: the masks and the weights to rewind the survivors to."""

    masks: Masks
    theta_0: Optional[WeightSnapshot]
    theta_k: Optional[WeightSnapshot] = None
    rounds: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


def save_ticket(directory: str, ticket: Ticket) -> None:
    """Writes the ticket's files into `directory`, each atomically."""
    ticket.masks.save(directory)
    if ticket.theta_0 is not None:
        ticket.theta_0.save(os.path.join(directory, THETA_0_FILE))
    if ticket.theta_k is not None:
        ticket.theta_k.save(os.path.join(directory, THETA_K_FILE))
    storage.save_json(os.path.join(directory, ROUNDS_FILE), ticket.rounds)


def load_ticket(directory: str) -> Ticket:
    """Reads a ticket written by `save_ticket` (or `LotteryTicketCallback.save`)."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no ticket directory at {directory}")

    def optional_snapshot(name):
        path = os.path.join(directory, name)
        return WeightSnapshot.load(path) if os.path.exists(path) else None

    rounds_path = os.path.join(directory, ROUNDS_FILE)
    return Ticket(
        masks=Masks.load(directory),
        theta_0=optional_snapshot(THETA_0_FILE),
        theta_k=optional_snapshot(THETA_K_FILE),
        rounds=storage.load_json(rounds_path) if os.path.exists(rounds_path) else [],
    )


def apply_ticket(model, ticket: Ticket, weights: str = "theta_0") -> None:
    """Sets the ticket's masks on `model` and its surviving weights to θ₀ or θ_k.

    Raises ValueError naming the layer when the ticket does not fit the model.
    """
    check_choice(weights, ("theta_0", "theta_k"), "weights")
    snapshot = getattr(ticket, weights)
    if snapshot is None:
        raise ValueError(f"the ticket has no {weights} to rewind to")
    set_masks(model, ticket.masks)
    restore_snapshot(model, snapshot)
