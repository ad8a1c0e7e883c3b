"""Where a lottery run stands: the round engine's state, in plain Python.

`RoundState` is everything `LotteryTicketCallback` needs to resume a run besides the model,
its optimizer and the weights it rewinds to; `to_dict`/`from_dict` are what
`state_dict`/`load_state` store (JSON-able). It also tracks the round's early-stop step:
the step of minimum validation loss.
"""

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional


@dataclasses.dataclass
class RoundState:
    """A lottery run's progress.

    Attributes:
      round: rounds finished and pruned since the first (0 while round 0 trains).
      round_epochs, round_steps: how far the current round has trained.
      round_start_iteration: the optimizer's step counter when the round started.
      pending_prune: the round has finished; the next one starts by pruning.
      best: [validation loss, step, validation metrics] of the round's early-stop step so far.
      rounds: the finished rounds' records.
      has_theta_k: θ_k has been captured.
      diverged: {'round', 'step', 'reason'} once training produced a NaN or inf.
      theta_digests: 'theta_0'/'theta_k' -> weight key -> digest, as captured.
      best_weights_digests: digests of the weights of `best`'s step, while their test
        metrics are still to be computed (None otherwise).
      round_pruned: layer -> weights pruned at the boundary before the current round.
      supermask_metrics: the current round's test metrics of its masked rewind weights,
        measured before it trained (None until measured, or without test data).
    """

    round: int = 0
    round_epochs: int = 0
    round_steps: int = 0
    round_start_iteration: int = 0
    pending_prune: bool = False
    best: Optional[list] = None
    rounds: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    has_theta_k: bool = False
    diverged: Optional[Dict[str, Any]] = None
    theta_digests: Dict[str, Dict[str, str]] = dataclasses.field(default_factory=dict)
    best_weights_digests: Optional[Dict[str, str]] = None
    round_pruned: Dict[str, int] = dataclasses.field(default_factory=dict)
    supermask_metrics: Optional[Dict[str, float]] = None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> "RoundState":
        """A stored state; fields newer than the state take their defaults."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in state.items() if name in names})

    def offer_early_stop(self, step: int, val_metrics: Mapping[str, float]) -> bool:
        """Makes `step` the round's early-stop step if its validation loss is the lowest so far
        (and finite); returns whether it did."""
        loss = val_metrics.get("val_loss")
        if loss is None or not math.isfinite(loss) or (self.best is not None and loss >= self.best[0]):
            return False
        self.best = [loss, step, dict(val_metrics)]
        return True

    def start_round(self) -> None:
        """Clears the finished round's progress (its record is in `rounds`)."""
        self.round_steps = self.round_epochs = 0
        self.best = None
        self.round_pruned, self.supermask_metrics = {}, None
