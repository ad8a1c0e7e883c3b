"""LotteryTicketCallback: iterative magnitude pruning with rewinding, inside model.fit.

The round engine, written once for every framework: when rounds start and end, what is
pruned, rewinds, optimizer resets, the early-stop step, divergence and the invariants. It
imports no Keras: reading and writing the model is the job of its framework's adapter
(lth_keras.adapters), chosen when the callback meets its model.
"""

import logging
from typing import Any, Dict, List, Optional

import numpy as np

from lth_keras import adapters, criteria, invariants, notices
from lth_keras.callback_base import CallbackBase
from lth_keras.masks import Masks, layer_of
from lth_keras.rounds import RoundState
from lth_keras.snapshots import WeightSnapshot
from lth_keras.tickets import Ticket, save_ticket
from lth_keras.validation import (
    check_bool,
    check_eval_data,
    check_non_negative_int,
    check_positive_int,
    check_seed,
)

log = logging.getLogger(__name__)


class LotteryTicketCallback(CallbackBase):
    """Finds a lottery ticket by iterative magnitude pruning during `model.fit`.

    It serves models prepared by `lth_keras.prune_for_lottery`: tf_keras models on tfmot's
    wrappers, and Keras 3 models (any backend) on `lth_keras.keras3.LotteryMask` layers.
    Whatever reads or writes the model goes through the adapter of the model's framework
    (lth_keras.adapters), so the round logic here is written once.

    Training is cut into rounds of `epochs_per_round` epochs (or `steps_per_round`
    steps). At the end of each round the callback records the round, and before the
    next one starts it prunes each layer's surviving weights by magnitude of the
    trained weights (at the rates `prune_for_lottery` gave; or by another `criterion`),
    rewinds every weight to θ₀ (captured when training starts) or θ_k (after
    `rewind_step` steps of round 0),
    resets the optimizer's slots and sets its step counter to `rewind_step`. If `fit`
    ends at a round boundary the model keeps its trained weights; the next `fit` with
    the same callback prunes first. If an epoch ends with a NaN or inf loss, or a round
    ends with a NaN or inf weight (weights are read only then, not at every epoch),
    training stops and `diverged` records the round and step.

    One callback serves one model: it binds to the model it first trains (or
    `prepare`s) and refuses any other. Compiling that model again between fits is
    followed: the new optimizer is reset between rounds from then on. Beside other
    callbacks, EarlyStopping is refused (it would end the whole run at the first rewind;
    the callback records each round's early-stop step itself), and callbacks that set the
    learning rate are warned about (see README, "Using it with other callbacks").

    Args:
      epochs_per_round: epochs per round; give this or `steps_per_round`.
      steps_per_round: optimizer steps per round, instead of epochs.
      rewind_step: 0 rewinds to θ₀; k > 0 rewinds to θ_k (late rewinding). Must be a
        multiple of the model's `steps_per_execution` and within round 0.
      one_shot: prune once, after round 0, straight to each layer's rate, and stop
        after the ticket's round (round 1).
      eval_every_steps: evaluate `validation_data` every this many steps to find the
        early-stop step (the paper uses 100); default: per epoch, from Keras's
        `val_loss`.
      validation_data: (x, y) or a dataset, needed for `eval_every_steps`; without it
        the round's validation metrics come from `fit(validation_data=...)`.
      test_data: (x, y) or a dataset evaluated at the end of each round, on the round's
        final weights and on its weights at the early-stop step, as 'test_*' metrics. The
        weights at each new early-stop candidate are kept in a copy beside the model's (one
        more copy of the weights), so the test set is evaluated twice a round, not at every
        new candidate; resuming by hand must checkpoint that copy (`checkpoint_items`).
      eval_batch_size: batch size for evaluating (x, y) arrays. Arrays are evaluated by
        `lth_keras.evaluation.CompiledEvaluation` in one compiled call, with the metrics
        `model.evaluate` would give; datasets by `model.evaluate`. Validation metrics the
        callback computes at an epoch's end are added to that epoch's logs as `val_*`.
      first_round: the number the first round's record gets (e.g. r for a control run
        that retrains the mask of round r); pruning and rewinding are unaffected.
      verbose: 1 prints a line per finished round, 0 is silent.
      keep_theta_0: with late rewinding (`rewind_step` > 0), False drops θ₀ from
        memory once θ_k is captured: rounds rewind to θ_k only, and θ₀ would be a
        second copy of the weights (save it first if you need it, as the experiment
        scripts do). Ignored when `rewind_step` is 0.
      check_invariants: at each round boundary, check that masks are 0/1 and only
        shrink, pruned weights are exactly 0, each layer (or global group) lost exactly
        its scheduled count and θ₀/θ_k are unchanged since captured; at every epoch's
        end and when fit ends, that the masks are still the round's (something else,
        e.g. `model.set_weights`, may have assigned them); raises `InvariantError` if
        not. One pass over the weights per round and one over the masks per epoch.
      criterion: which surviving weights a round keeps (lth_keras.criteria): 'large_final'
        (the default, magnitude pruning), 'large_init', 'magnitude_increase', 'movement',
        'random' (each removing the scheduled count exactly, layerwise or global as
        `prune_for_lottery` set the scope) or 'threshold' (every survivor with |w| below
        `threshold_scale` times the standard deviation of its layer's, or global group's,
        survivors: the counts are whatever falls under, recorded in each round's 'pruned').
        The initial weights w_i the criteria compare with are the rewind point, θ₀ or θ_k.
        It is the callback's, not `prune_for_lottery`'s: it needs the rewind point.
      threshold_scale: s of the 'threshold' criterion (> 0; default 0.5, Han et al.'s).
      criterion_seed: seeds the 'random' criterion (round r draws from (seed, r)).

    Each round's record also holds, besides its metrics: 'pruned' (layer -> weights pruned
    at the boundary before the round; empty for the first), 'supermask_metrics' (with
    `test_data`: the test metrics of the masked rewind weights m ⊙ θ₀ (or θ_k) right after the
    rewind, before the round trained; one more test evaluation a round) and
    'sign_stability' (the fraction of the round's surviving weights whose sign at its end
    is their sign at the rewind point).

    Example:
      >>> ticket = lth_keras.LotteryTicketCallback(epochs_per_round=5)
      >>> model.fit(x, y, epochs=5 * 10, validation_data=(xv, yv), callbacks=[ticket])
      >>> ticket.rounds[-1]["weights_remaining"]
    """

    def __init__(
        self,
        epochs_per_round: Optional[int] = None,
        steps_per_round: Optional[int] = None,
        rewind_step: int = 0,
        one_shot: bool = False,
        eval_every_steps: Optional[int] = None,
        validation_data=None,
        test_data=None,
        eval_batch_size: int = 1000,
        first_round: int = 0,
        verbose: int = 1,
        keep_theta_0: bool = True,
        check_invariants: bool = True,
        criterion: str = criteria.DEFAULT,
        threshold_scale: float = criteria.DEFAULT_THRESHOLD_SCALE,
        criterion_seed: int = 0,
    ):
        super().__init__()
        if (epochs_per_round is None) == (steps_per_round is None):
            raise ValueError(
                "give exactly one of `epochs_per_round` and `steps_per_round`, got "
                f"epochs_per_round={epochs_per_round!r}, steps_per_round={steps_per_round!r}"
            )
        self.epochs_per_round = check_positive_int(epochs_per_round, "epochs_per_round", allow_none=True)
        self.steps_per_round = check_positive_int(steps_per_round, "steps_per_round", allow_none=True)
        self.rewind_step = check_non_negative_int(rewind_step, "rewind_step")
        if self.steps_per_round is not None and self.rewind_step >= self.steps_per_round:
            raise ValueError(
                f"`rewind_step`={rewind_step} is beyond the first round ({steps_per_round} steps)"
            )
        if not isinstance(one_shot, bool):
            raise TypeError(f"`one_shot` must be True or False, got {one_shot!r}")
        self.one_shot = one_shot
        self.eval_every_steps = check_positive_int(eval_every_steps, "eval_every_steps", allow_none=True)
        if self.eval_every_steps is not None and validation_data is None:
            raise ValueError("`eval_every_steps` needs `validation_data` to evaluate on")
        self.validation_data = check_eval_data(validation_data, "validation_data")
        self.test_data = check_eval_data(test_data, "test_data")
        self.eval_batch_size = check_positive_int(eval_batch_size, "eval_batch_size")
        self.first_round = check_non_negative_int(first_round, "first_round")
        self.verbose = check_non_negative_int(verbose, "verbose")
        self.keep_theta_0 = check_bool(keep_theta_0, "keep_theta_0")
        self.check_invariants = check_bool(check_invariants, "check_invariants")
        self.criterion, self.threshold_scale = criteria.check_criterion(criterion, threshold_scale)
        if threshold_scale != criteria.DEFAULT_THRESHOLD_SCALE and self.criterion != criteria.THRESHOLD:
            raise ValueError(
                f"`threshold_scale`={threshold_scale!r} is used by criterion='threshold' only, "
                f"not by criterion={self.criterion!r}"
            )
        self.criterion_seed = check_seed(criterion_seed, "criterion_seed")

        self.state = RoundState()  # what state_dict() stores
        self.theta_0: Optional[WeightSnapshot] = None
        self.theta_k: Optional[WeightSnapshot] = None
        self._adapter = None  # the model's framework's (lth_keras.adapters), set with the model
        self._optimizer_reset = None  # the adapter's: puts the optimizer back as it was built
        self._best_weights = None  # the adapter's WeightCopy of the weights at state.best's step
        self._epoch_start_steps = 0
        self._round_masks: Optional[Dict[str, np.ndarray]] = None  # bool: what this round trains with
        self._round_start_learning_rate: Optional[float] = None
        self._finish_at_epoch_end = False  # a step-based round ended on an epoch's last batch
        self._stopped_training = False  # this callback set model.stop_training in this fit
        self._progbar_beside = False  # Keras's ProgbarLogger is in this fit's callbacks
        self._waiting_lines: List[str] = []  # round lines held until the progress bar ends its line

    # --- the run's progress ----------------------------------------------------------

    @property
    def rounds(self) -> List[Dict[str, Any]]:
        """One record per finished round (see README, "The rounds")."""
        return self.state.rounds

    @property
    def diverged(self) -> Optional[Dict[str, Any]]:
        """{'round', 'step', 'reason'} once training produced a NaN or inf, else None."""
        return self.state.diverged

    @property
    def current_round(self) -> int:
        """The number of the round training now (or just finished), counted from `first_round`."""
        return self.state.round + self.first_round

    @property
    def rewind_weights(self) -> Optional[WeightSnapshot]:
        """θ_k when `rewind_step` > 0, else θ₀."""
        return self.theta_k if self.rewind_step else self.theta_0

    @property
    def masks(self) -> Masks:
        return self._adapter.get_masks(self.model)

    # --- Keras hooks ---------------------------------------------------------------

    def _implements_train_batch_hooks(self):
        # Keras skips per-batch calls when no callback needs them; we need them only
        # for step-based rounds, step-based evaluation or capturing θ_k.
        return (
            self.steps_per_round is not None
            or self.eval_every_steps is not None
            or (self.rewind_step > 0 and self.theta_k is None)
        )

    def set_model(self, model):
        """Binds to `model`; refuses another model once this one's lottery has started."""
        if self._optimizer_reset is not None and model is not self.model:
            raise ValueError(
                f"this LotteryTicketCallback runs the lottery of model {self.model.name!r} (θ₀ captured "
                f"from it, {len(self.rounds)} round(s) recorded) and cannot also serve model "
                f"{model.name!r}{' (another model of that name)' if model.name == self.model.name else ''}: "
                "it would rewind that model to the first one's θ₀ and reset the first one's optimizer. "
                "Create a new LotteryTicketCallback for each model (e.g. inside the loop over seeds)"
            )
        self._adapter = adapters.for_model(model)
        super().set_model(model)

    def on_train_begin(self, logs=None):
        self._adapter.check_prepared(self.model)  # refuses a model that was not prepared
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            raise ValueError("compile the model before training it with LotteryTicketCallback")
        others = self._adapter.callbacks_beside(self)
        self._adapter.check_callbacks_beside(others)
        self._progbar_beside = any(self._adapter.is_progress_bar(other) for other in others)
        if any(isinstance(other, LotteryTicketCallback) for other in others):
            raise ValueError(
                "fit was given two LotteryTicketCallbacks, which would both prune the model: give it one"
            )
        self._check_steps_per_execution()
        if self.diverged:
            raise ValueError(
                f"training diverged at round {self.diverged['round']}, step {self.diverged['step']}"
            )
        if self.one_shot and len(self.rounds) >= 2:
            raise ValueError("this one-shot ticket has finished both its rounds; nothing is left to train")
        if self.theta_0 is None and self.theta_k is None:
            self._capture_initial_state(optimizer)
        elif self._optimizer_reset is None:
            raise ValueError(
                "the callback has θ₀ but never saw the optimizer's initial state: call "
                "prepare(model) before restoring a checkpoint and load_state()"
            )
        elif optimizer is not self._optimizer_reset.optimizer:
            self._adopt_optimizer(optimizer)
        self._check_masks_unchanged("before fit started")
        self._stopped_training = False
        if self.state.pending_prune:
            self._start_next_round()
        elif self.state.round_steps == 0 and self.state.supermask_metrics is None:
            self._measure_supermask()  # the first round, before it trains
        self._adapter.begin_fit(self.model, optimizer)  # last: a refusal above leaves the model as it was

    def on_epoch_begin(self, epoch, logs=None):
        self._print_waiting_lines()
        if self.state.pending_prune:
            self._start_next_round()
        self._epoch_start_steps = self.state.round_steps

    def on_train_batch_begin(self, batch, logs=None):
        if self.state.pending_prune:
            self._start_next_round()
            self._epoch_start_steps = -batch

    def on_train_batch_end(self, batch, logs=None):
        state = self.state
        state.round_steps = self._epoch_start_steps + batch + 1
        if state.round == 0 and self.rewind_step and self.theta_k is None:
            if state.round_steps >= self.rewind_step:
                self.theta_k = self._adapter.take_snapshot(self.model)
                state.has_theta_k = True
                self._release_theta_0()
                self._remember_theta_digests()
        if self.eval_every_steps and state.round_steps % self.eval_every_steps == 0:
            self._track(state.round_steps, self._evaluate())
        if self.steps_per_round and state.round_steps == self.steps_per_round:
            if batch + 1 == self.params.get("steps"):  # the epoch's end: finish with its validation
                self._finish_at_epoch_end = True
            else:
                self._finish_round(logs or {})
                self._epoch_start_steps = -(batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        state = self.state
        self._check_masks_unchanged("at an epoch's end")
        self._adapter.apply_masks_to_weights(
            self.model, only_masked_in_call=True
        )  # epoch-end checkpoints hold 0
        if self.stop_if_diverged(logs):
            return
        if self.steps_per_round is None:
            state.round_steps = self._adapter.iterations(self.model.optimizer) - state.round_start_iteration
            state.round_epochs += 1
        if self.eval_every_steps is None and not state.pending_prune:
            self._track(state.round_steps, self._epoch_validation(logs))
        if self._finish_at_epoch_end or state.round_epochs == self.epochs_per_round:
            self._finish_at_epoch_end = False
            self._finish_round(logs)

    def on_train_end(self, logs=None):
        self._print_waiting_lines()
        self._adapter.end_fit(self.model)
        self._check_masks_unchanged("when fit ended")
        self._adapter.apply_masks_to_weights(self.model)
        self._say_if_fit_ended_mid_run()

    # --- round logic ---------------------------------------------------------------

    def _check_steps_per_execution(self):
        steps_per_execution = self._adapter.steps_per_execution(self.model)
        for name in ("rewind_step", "steps_per_round", "eval_every_steps"):
            value = getattr(self, name)
            if value and value % steps_per_execution:
                raise ValueError(
                    f"`{name}`={value} is not a multiple of the model's steps_per_execution "
                    f"({steps_per_execution}): Keras only calls callbacks between executions"
                )
        if self.epochs_per_round and self.rewind_step and self.params.get("steps"):
            round_steps = self.epochs_per_round * self.params["steps"]
            if self.rewind_step >= round_steps:
                raise ValueError(
                    f"`rewind_step`={self.rewind_step} is beyond the first round "
                    f"({self.epochs_per_round} epochs of {self.params['steps']} steps = {round_steps})"
                )

    def _capture_initial_state(self, optimizer):
        adapter = self._adapter
        iterations = adapter.iterations(optimizer)
        if iterations != 0:
            raise ValueError(
                f"the optimizer has already taken {iterations} steps: LotteryTicketCallback must "
                "see training from the initial weights θ₀; compile with a fresh optimizer"
            )
        adapter.enable_training(self.model)
        self._warn_if_already_in_a_lottery()
        self.theta_0 = adapter.take_snapshot(self.model)
        self._remember_theta_digests()
        self._optimizer_reset = adapter.optimizer_reset(self.model, optimizer)
        if self.test_data is not None:
            self._best_weights = adapter.weight_copy(self.model)
        self.state.round_start_iteration = 0
        self._round_start_learning_rate = adapter.learning_rate_value(optimizer)
        self._remember_round_masks()
        adapter.mark_round(self.model, self.first_round)

    def _warn_if_already_in_a_lottery(self) -> None:
        """A fresh callback calls the model's state θ₀ and round 0: say so if it was mid-run or pruned."""
        if self.first_round:
            return  # retraining a ticket's round, as the controls do
        marked, masks = self._adapter.marked_round(self.model), self._adapter.get_masks(self.model)
        if marked is None and masks.weights_remaining == 1.0:
            return
        state = f"is {100 * masks.weights_remaining:.2f}% unpruned"
        if marked is not None:
            state = f"was in round {marked} of a lottery run (its wrappers record it) and {state}"
        notices.warn(
            f"model {self.model.name!r} {state}: this new LotteryTicketCallback takes its current weights "
            "as θ₀ and its masks as round 0's. To go on with that run instead, give the callback its "
            "state: prepare(model) before restoring the checkpoint, then load_state(state, theta_0, "
            "theta_k); to retrain a ticket's round r, pass first_round=r"
        )

    def _adopt_optimizer(self, optimizer) -> None:
        """The model was compiled again: reset the new optimizer between rounds from now on.

        Mid-round, the new optimizer continues the round's step count (so records, θ_k and
        learning-rate schedules stay in step) with the fresh slots the user compiled it with.
        """
        iterations = self._adapter.iterations(optimizer)
        if iterations != 0:
            raise ValueError(
                f"the model was compiled again with an optimizer that has already taken {iterations} "
                "steps: LotteryTicketCallback resets the optimizer to its initial state each round, so "
                "compile with a fresh optimizer"
            )
        self._optimizer_reset = self._adapter.optimizer_reset(self.model, optimizer)
        state = self.state
        if state.pending_prune:
            return  # the next round starts by resetting it
        step = state.round_start_iteration + state.round_steps
        self._adapter.set_iterations(optimizer, step)
        if state.round_steps:
            notices.warn(
                f"the model was compiled again {state.round_steps} steps into round "
                f"{self.current_round}: its new optimizer continues at iteration {step} with "
                "fresh slots (e.g. Adam's moments), so this round trains differently from the others"
            )

    def _epoch_validation(self, logs) -> Dict[str, float]:
        """The epoch's validation metrics: Keras's `val_*` logs, or `validation_data` evaluated
        and added to `logs`, so that the callbacks after this one (History, TensorBoard, ...) see
        them as they see Keras's."""
        val = {k: v for k, v in logs.items() if k.startswith("val_")}
        if not val and self.validation_data is not None:
            val = self._evaluate()
            logs.update(val)
        return val

    def _evaluate(self, data=None, prefix: str = "val_") -> Dict[str, float]:
        """Metrics on `data` (default the validation data) named prefix + metric; the model's
        running training metrics are left as they were."""
        data = self.validation_data if data is None else data
        results = self._adapter.evaluate(self.model, data, self.eval_batch_size)
        return {f"{prefix}{k}": v for k, v in results.items()}

    def _track(self, step: int, val_metrics: Dict[str, float]):
        if self.state.offer_early_stop(step, val_metrics) and self._best_weights is not None:
            self._best_weights.capture()  # tested at the round's end
            self.state.best_weights_digests = {}  # held; digested when the state is stored

    def _test_best_weights(self) -> Dict[str, float]:
        """Test metrics of the weights at the round's early-stop step (held in `_best_weights`)."""
        self._best_weights.swap()
        try:
            return self._evaluate(self.test_data, "test_")
        finally:
            self._best_weights.swap()

    def stop_if_diverged(self, logs, weights: bool = False) -> bool:
        """Stops training if the loss (or, with `weights`, a weight) is NaN or inf; records it in `diverged`.

        The loss is the mean over the steps so far, so one NaN or inf step shows in it. The
        weights are read only when asked (at a round's end, before they are ranked, and before a
        checkpoint): reading them every epoch would cost a copy of the model each time.
        """
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(loss):
            reason = f"loss {loss}"
        elif weights and not self._adapter.weights_finite(self.model):
            reason = "a weight is NaN or inf"
        else:
            return False
        step = self._adapter.iterations(self.model.optimizer) - self.state.round_start_iteration
        self.state.diverged = {"round": self.current_round, "step": step, "reason": reason}
        self.model.stop_training = self._stopped_training = True
        log.warning("training diverged (%s) at round %d, step %d: stopping", reason, self.current_round, step)
        self.on_diverged(self.diverged)
        return True

    def _finish_round(self, logs):
        if self.stop_if_diverged(logs, weights=True):
            return
        state = self.state
        if self.check_invariants:
            self._check_pruned_weights_stayed_zero()
        if state.round == 0 and self.rewind_step and self.theta_k is None:
            raise ValueError(
                f"`rewind_step`={self.rewind_step} is beyond the first round, which "
                f"ended after {state.round_steps} steps"
            )
        metrics = {k: float(v) for k, v in logs.items() if np.ndim(v) == 0}
        if self.validation_data is not None and not any(k.startswith("val_") for k in metrics):
            metrics.update(self._evaluate())
        if self.test_data is not None:
            metrics.update(self._evaluate(self.test_data, "test_"))
        masks = self._adapter.get_masks(self.model)
        final = self._adapter.get_effective_weights(self.model)
        early_stop_metrics = state.best[2] if state.best else {}
        if state.best_weights_digests is not None:
            early_stop_metrics = {**early_stop_metrics, **self._test_best_weights()}
        record = {
            "round": self.current_round,
            "weights_remaining": masks.weights_remaining,
            "layer_sparsity": masks.layer_sparsity(),
            "steps": state.round_steps,
            "metrics": metrics,
            "early_stop_step": state.best[1] if state.best else None,
            "early_stop_metrics": early_stop_metrics,
            "pruned": dict(state.round_pruned),
            "supermask_metrics": dict(state.supermask_metrics or {}),
            "sign_stability": criteria.sign_stability(final, self.rewind_weights, masks),
        }
        self._adapter.apply_masks_to_weights(self.model)
        state.rounds.append(record)
        if self.verbose:
            self._say_round(format_round(record))

        state.start_round()
        state.best_weights_digests = None
        if self.one_shot and state.round >= 1:
            self.model.stop_training = self._stopped_training = True
            log.warning("one-shot ticket trained: training stops after round %d", state.round)
        else:
            state.pending_prune = True
        self.on_round_end(record)  # after the bookkeeping, so state_dict() here is resumable

    def _start_next_round(self):
        """Prunes by magnitude of the trained weights, rewinds, resets the optimizer."""
        adapter, model = self._adapter, self.model
        masks_before = adapter.get_masks(model)
        self._check_masks_unchanged("when the round ended", masks_before)
        rates, groups = adapter.layer_rates(model), adapter.pruning_groups(model)
        new_masks = criteria.prune(
            self.criterion,
            adapter.get_effective_weights(model),
            masks_before,
            rates,
            groups,
            initial=self.rewind_weights,
            rng=np.random.default_rng([self.criterion_seed, self.current_round]),
            threshold_scale=self.threshold_scale,
        )
        adapter.set_masks(model, new_masks)
        adapter.restore_snapshot(model, self.rewind_weights)
        self._optimizer_reset.reset(self.rewind_step)
        if self.check_invariants:  # threshold's counts are whatever fell under: not checked
            counted = groups if criteria.counts_scheduled(self.criterion) else []
            self._check_round_invariants(masks_before, rates, counted)
        state = self.state
        state.round_pruned = criteria.pruned_per_layer(masks_before, new_masks)
        state.round += 1
        state.round_start_iteration = self.rewind_step
        state.pending_prune = False
        self._remember_round_masks(new_masks)
        adapter.mark_round(model, self.current_round)
        self._say_what_changed_between_rounds(masks_before, new_masks)
        self._measure_supermask()
        self.on_round_begin(state.round)

    def _measure_supermask(self) -> None:
        """Test metrics of the round's masked rewind weights, before it trains (with test_data)."""
        if self.test_data is not None:
            self.state.supermask_metrics = self._evaluate(self.test_data, "test_")

    def _say_what_changed_between_rounds(self, masks_before: Masks, masks: Masks) -> None:
        """Warns when pruning emptied a weight, or the learning rate differs from the last round's start."""
        for key, mask in masks.items():
            if not mask.any() and masks_before[key].any():
                count = int(np.count_nonzero(masks_before[key]))
                notices.warn_emptied(key, count, f"pruning before round {self.current_round}")
        rate = self._adapter.learning_rate_value(self._optimizer_reset.optimizer)
        if rate != self._round_start_learning_rate:
            notices.warn(
                f"round {self.current_round} starts at learning rate {rate}, the round before at "
                f"{self._round_start_learning_rate}: something set it (a callback such as "
                "ReduceLROnPlateau or LearningRateScheduler, compiling again, or an assignment), and "
                "the optimizer reset between rounds does not undo that"
            )
        self._round_start_learning_rate = rate

    def _remember_round_masks(self, masks: Optional[Masks] = None) -> None:
        """Keeps the masks this round trains with (default: the model's), as bools, to check them."""
        if self.check_invariants:
            masks = self._adapter.get_masks(self.model) if masks is None else masks
            self._round_masks = {key: mask != 0 for key, mask in masks.items()}

    def _check_masks_unchanged(self, when: str, masks: Optional[Masks] = None) -> None:
        """Raises InvariantError if the masks (default: the model's) are no longer this round's."""
        if not self.check_invariants or self._round_masks is None:
            return
        if masks is None:  # read without Masks' 0/1 check: the comparison sees any other value
            masks = self._adapter.raw_masks(self.model)
        try:
            invariants.check_masks_unchanged(self._round_masks, masks)
        except invariants.InvariantError as e:
            raise invariants.InvariantError(
                f"{e} {when} (round {self.current_round}). Only LotteryTicketCallback may "
                "change masks, between rounds: something else assigned the mask variables (e.g. "
                "model.set_weights or load_weights, as EarlyStopping(restore_best_weights=True) and "
                "BackupAndRestore do), so the model no longer trains this round's ticket"
            ) from e

    def _say_if_fit_ended_mid_run(self) -> None:
        """Warns when fit ends inside a round, or because something else set model.stop_training."""
        state = self.state
        stopped = self.model.stop_training and not self._stopped_training
        in_round = not state.pending_prune and (state.round_steps or state.round_epochs)
        if self.diverged or not (stopped or in_round):
            return
        if in_round:
            done, total, unit = (
                (state.round_steps, self.steps_per_round, "steps")
                if self.steps_per_round
                else (state.round_epochs, self.epochs_per_round, "epochs")
            )
            where = f"inside round {self.current_round}, after {done} of its {total} {unit}"
            where += ", which has no record yet"
        else:
            where = f"after round {self.current_round}"
        why = "fit's epochs ran out"
        if stopped:
            why = "model.stop_training was set, by another callback or by hand"
        notices.warn(
            f"fit ended {where} ({why}, {len(self.rounds)} round(s) recorded). Calling fit again with "
            "this callback goes on from there"
        )

    def _check_round_invariants(self, masks_before: Masks, rates, groups) -> None:
        """Raises InvariantError if pruning and rewinding broke what must hold between rounds."""
        masks, weights = self._adapter.raw_masks(self.model), self._adapter.get_stored_weights(self.model)
        invariants.check_round_boundary(masks_before, masks, weights, rates, groups)
        for name, snapshot in self._thetas().items():
            invariants.check_unchanged(snapshot, self.state.theta_digests[name], name)

    def _release_theta_0(self) -> None:
        """Drops θ₀ once θ_k, the only rewind target of late rewinding, is there (keep_theta_0=False)."""
        if not self.keep_theta_0 and self.rewind_step and self.theta_k is not None:
            self.theta_0 = None
            self.state.theta_digests.pop("theta_0", None)

    def _check_pruned_weights_stayed_zero(self) -> None:
        """Pruned weights must still be exactly 0 when a round ends.

        The layers checked are those whose forward pass reads the stored weights: tf_keras
        wrappers keep them at 0 through a variable constraint, which Keras optimizers apply
        after each update; Keras 3 ones, while this callback's fit trains with an optimizer
        known to keep them, through zero gradients and fresh slots. An optimizer that ignores
        constraints, or weights set by hand mid-round, would otherwise train a different
        network than the ticket's.
        """
        constrained = self._adapter.constrained_layers(self.model)  # the others mask before each use
        masks = {k: m for k, m in self._adapter.get_masks(self.model).items() if layer_of(k) in constrained}
        try:
            invariants.check_pruned_are_zero(self._adapter.get_stored_weights(self.model), masks)
        except invariants.InvariantError as e:
            self._adapter.end_fit(self.model)  # fit stops here, without on_train_end to do it
            raise invariants.InvariantError(
                f"{e} at the end of round {self.current_round}: something other than a "
                "Keras optimizer changed them during the round, or the optimizer does not keep pruned "
                "weights at 0 (it ignores variable constraints, or updates a weight whose gradient is 0)"
            ) from e

    def _thetas(self) -> Dict[str, WeightSnapshot]:
        """The captured rewind targets by name: 'theta_0' and, once captured, 'theta_k'."""
        thetas = {"theta_0": self.theta_0, "theta_k": self.theta_k}
        return {name: snapshot for name, snapshot in thetas.items() if snapshot is not None}

    def _remember_theta_digests(self) -> None:
        """Digests of θ₀/θ_k as captured (or loaded), to check they stay so."""
        if self.check_invariants:
            self.state.theta_digests = {name: invariants.digests(s) for name, s in self._thetas().items()}

    # --- extension points and state ------------------------------------------------

    def prepare(self, model) -> None:
        """Captures θ₀ and the optimizer's initial state now instead of at train begin.

        To resume: build and compile the model, call `prepare(model)` while the
        optimizer is fresh, restore the checkpoint, then `load_state(...)`.
        """
        self.set_model(model)
        self._capture_initial_state(model.optimizer)

    def state_dict(self) -> Dict[str, Any]:
        """The callback's progress as JSON-able values (θ₀/θ_k are saved separately)."""
        if self.state.best_weights_digests is not None:  # held: checked on load_state
            self.state.best_weights_digests = invariants.digests(self._best_weights.arrays())
        return self.state.to_dict()

    def checkpoint_items(self, state: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """What a checkpoint of the callback's progress must hold besides model and optimizer.

        With `test_data`, the weights at the round's early-stop step so far (tested when the
        round ends). Save: `tf.train.Checkpoint(model=model, optimizer=model.optimizer,
        **callback.checkpoint_items())`, with `state_dict()` beside it; restore with
        `checkpoint_items(state)`, for the saved `state`, after `prepare(model)`.
        """
        held = (self.state if state is None else RoundState.from_dict(state)).best_weights_digests is not None
        if not held:
            return {}
        if self._best_weights is None:
            raise ValueError(
                "this state holds early-stop weights to test: call prepare(model) on a callback "
                "given test_data before restoring it"
            )
        return {"lottery_early_stop_weights": self._best_weights.copies}

    def load_state(self, state: Dict[str, Any], theta_0, theta_k=None) -> None:
        """Restores progress saved by `state_dict`, with the θ₀ (and θ_k) it rewinds to."""
        loaded = RoundState.from_dict(state)
        if loaded.has_theta_k and theta_k is None:
            raise ValueError("the saved state had captured θ_k, but no θ_k was given to load_state")
        # Were the early-stop weights restored into checkpoint_items(state)? (That refuses a
        # callback with no copy to hold them.)
        if self.checkpoint_items(state) and (
            invariants.digests(self._best_weights.arrays()) != loaded.best_weights_digests
        ):
            raise ValueError(
                "the saved state has early-stop weights that were not restored: restore the "
                "checkpoint as it was saved, with callback.checkpoint_items(state) among its objects"
            )
        self.theta_0 = WeightSnapshot(theta_0)
        self.theta_k = WeightSnapshot(theta_k) if theta_k is not None else None
        self._remember_theta_digests()  # of the θ given, to compare with the saved ones
        given = self.state.theta_digests
        for name, saved in loaded.theta_digests.items():  # θ files changed since the save?
            if name in given:
                invariants.check_digests(given[name], saved, f"{name} given to load_state")
        if self.check_invariants:
            loaded.theta_digests = given
        self.state = loaded
        self._release_theta_0()
        if self.model is not None:  # the restored checkpoint's masks are what this round trains with
            self._remember_round_masks()

    # --- the round lines ------------------------------------------------------------

    def _say_round(self, line: str) -> None:
        """Prints a finished round's line, or holds it while Keras's progress bar is mid-line.

        Keras appends its ProgbarLogger after the user's callbacks, so the bar finishes the
        epoch's line only after this callback's on_epoch_end (and a step-based round can end
        mid-epoch): the line waits for the next epoch's start or the end of fit.
        """
        if self._progbar_beside:
            self._waiting_lines.append(line)
        else:
            self.print_round_line(line)

    def _print_waiting_lines(self) -> None:
        for line in self._waiting_lines:
            self.print_round_line(line)
        self._waiting_lines = []

    def print_round_line(self, line: str) -> None:
        """Prints one finished round's line (with `verbose`); override to show it elsewhere."""
        print(line)

    def on_round_begin(self, round_index: int) -> None:
        """Called after pruning and rewinding, before round `round_index` trains."""

    def on_round_end(self, record: Dict[str, Any]) -> None:
        """Called with each finished round's record; override to log or save."""

    def on_diverged(self, where: Dict[str, Any]) -> None:
        """Called once when training diverges ({'round', 'step', 'reason'}); training then stops."""

    def save(self, directory: str) -> None:
        """Writes masks, θ₀ (and θ_k) and the round records to `directory`."""
        save_ticket(directory, Ticket(self.masks, self.theta_0, self.theta_k, self.rounds))


def format_round(record: Dict[str, Any]) -> str:
    """One line describing a finished round."""
    parts = [f"round {record['round']}: {100 * record['weights_remaining']:.2f}% weights remaining"]
    for name in ("accuracy", "val_accuracy", "loss", "val_loss"):
        if name in record["metrics"]:
            parts.append(f"{name} {record['metrics'][name]:.4f}")
    if record["early_stop_step"] is not None:
        parts.append(f"early-stop step {record['early_stop_step']}")
    return ", ".join(parts)
