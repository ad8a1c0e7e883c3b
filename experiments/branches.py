"""The branches of an experiment, registered in one place: the ticket and its controls.

A branch is what `--control` selects: how its rounds are trained and where they go
(`<experiment>/<branch name>/`), what it is, and how the report draws it. The runner,
the report and the layout know no branch by name; a new study registers a `Branch` here.

    ticket          --control=none: iterative (or one-shot) magnitude pruning, rewinding
    reinit          --control=reinit: each of the ticket's masks, weights drawn afresh
    random_prune    --control=random_prune: a random mask of each round's per-layer counts, θ₀
    signs           --control=signs: each of the ticket's masks, fresh magnitudes with θ₀'s signs
"""

import dataclasses
from typing import Callable, Dict, List, Optional

import lth_keras
from experiments import components, integrity, layout, progress, progress_bar


@dataclasses.dataclass(frozen=True)
class Branch:
    """One branch of an experiment.

    Attributes:
      name: its directory under the experiment and its label in reports.
      control: the --control value that selects it.
      description: one line for --help.
      line_style: how the report's plots draw it (a matplotlib line style).
      label: its name in the report's plot legends, for a reader (e.g. "winning ticket").
      retrain: a control's rule for its weights, (model, masks, theta_0, seed) -> None, applied to
        each of a ticket's saved masks; a study retraining another run's ticket under the same
        control (experiments/transfer.py) reuses it. None for the ticket itself.
      run: (branch, config, splits, strategy, dirs, experiment, replicate, seed) -> the finished
        round records of one replicate; `dirs` has the "read" and "write" run directories.
      check: (config) -> None; raises ValueError naming a flag this branch cannot take,
        before anything is written.
      preflight: (branch, config, experiment, replicate, model) -> the damaged files of the
        replicate's run that can be rebuilt; raises (RunFileError, ValueError, FileNotFoundError)
        when a stored file it relies on cannot be used. `model` is a freshly built model to try
        stored weights and masks on. Writes no file: the runner calls it for every replicate
        before anything is written.
    """

    name: str
    control: str
    description: str
    line_style: str
    run: Callable[..., List[dict]]
    preflight: Callable[..., List[integrity.Problem]]
    check: Callable[..., None] = lambda config: None
    label: str = ""
    retrain: Optional[Callable[..., None]] = None

    def train(self, config, splits, strategy, dirs, experiment, replicate, seed) -> List[dict]:
        """Trains (or resumes) one replicate of this branch; returns its finished round records."""
        return self.run(self, config, splits, strategy, dirs, experiment, replicate, seed)


def refuse_if_diverged(run: str) -> None:
    """A run that diverged would diverge again: re-running it is refused, not retrained."""
    where = progress.divergence(run)
    if where is not None:
        raise ValueError(progress.diverged_message(run, where))


def check_own_run(config, run: str, model, rewinds: bool) -> List[integrity.Problem]:
    """The run's damaged files that can be rebuilt; refuses any other, or a diverged run.

    Reads what resuming will: the round records, the newest checkpoint's progress and (if the
    run `rewinds`) the θ files it names, tried on `model`. With --overwrite the run is deleted
    before training, so nothing of it is checked.
    """
    if config.overwrite:
        return []
    found = integrity.problems(run)
    integrity.refuse([p for p in found if p.source is None])
    refuse_if_diverged(run)
    if not found:  # else the files rebuilt first are read when the replicate starts
        progress.finished_rounds(run)
        point = progress.resume_point(run)
        if point is not None and rewinds:
            progress.load_thetas(run, point["state"], lth_keras.take_snapshot(model))
    return found


def preflight_ticket(branch, config, experiment, replicate, model) -> List[integrity.Problem]:
    return check_own_run(config, layout.run_dir(experiment, branch.name, replicate), model, rewinds=True)


def preflight_control(branch, config, experiment, replicate, model) -> List[integrity.Problem]:
    """A control relies on the ticket's θ₀, masks and records: any of them damaged is refused
    (the ticket's own command rebuilds what can be)."""
    check_ticket(config, layout.run_dir(experiment, TICKET.name, replicate), model)
    return check_own_run(config, layout.run_dir(experiment, branch.name, replicate), model, rewinds=False)


def check_ticket(config, ticket_dir: str, model, thetas=("theta_0",)) -> None:
    """Refuses a ticket run whose files a control needs are damaged, missing or not of `model`:
    its finished rounds' records and masks (up to --prune_iters) and its θ files `thetas`."""
    integrity.refuse([p for p in integrity.problems(ticket_dir) if not integrity.in_checkpoint(p.path)])
    ticket_rounds = progress.finished_rounds(ticket_dir)
    if not ticket_rounds:
        raise FileNotFoundError(
            f"--control={config.control} retrains the ticket's saved masks, but {ticket_dir} has no "
            "finished round: run the same command with --control=none first"
        )
    for name in thetas:
        ticket_theta(ticket_dir, model, name)
    for record in ticket_rounds[: config.prune_iters + 1]:
        _ticket_masks(layout.round_dir(ticket_dir, record["round"]), model)


def ticket_theta(ticket_dir: str, model, name: str = "theta_0"):
    """The ticket's θ₀ (or θ_k), refused (RunFileError) if missing, unreadable or not of `model`."""
    path = layout.theta_file(ticket_dir, name)
    with progress.reading(path, progress.START_ANEW):
        theta = lth_keras.WeightSnapshot.load(path)
        shapes = {key: value.shape for key, value in lth_keras.take_snapshot(model).items()}
        lth_keras.model_state.check_snapshot_fits(theta, shapes)
    return theta


def _ticket_masks(round_directory: str, model):
    """A round's masks, set on `model`; refused (RunFileError) if unreadable or not of `model`."""
    with progress.reading(layout.masks_file(round_directory), progress.redo_from(round_directory)):
        masks = lth_keras.Masks.load(round_directory)
        lth_keras.set_masks(model, masks)
    return masks


def train_rounds(config, splits, model, callback, rounds, point, theta_dir=None, stream=None):
    """Fits `rounds` rounds with `callback`, first restoring checkpoint `point` if given.

    A Keras epoch here is one validation interval (`--eval_every` steps): the callback
    validates, checks and may checkpoint at each. `theta_dir` holds the θ₀/θ_k a resumed
    ticket rewinds to (None for a control). `stream`: the run's training stream from its
    first step, if built already (a control's levels share it; a resumed one starts later).
    Raises TrainingDiverged or Interrupted when training stopped early.
    """
    intervals_per_round = config.iterations // config.eval_every
    intervals_done = 0
    if point is not None:
        intervals_done = progress.restore(model, callback, point, theta_dir)
        print(f"resuming {point['round_dir']} at {progress.describe(point['state'])}")
    callback.set_intervals_done(intervals_done)
    if stream is None or intervals_done:
        stream = components.training_batches(
            config, splits, model, start_step=intervals_done * config.eval_every
        )
    model.fit(
        stream,
        steps_per_epoch=config.eval_every,
        initial_epoch=intervals_done,
        epochs=rounds * intervals_per_round,
        callbacks=[callback],
        shuffle=False,  # the stream is shuffled already (Keras 3 warns that it would not shuffle it)
        verbose=0,
    )
    if callback.diverged:
        raise progress.TrainingDiverged(progress.diverged_message(callback.run_dir, callback.diverged))
    if progress.STOP.requested:
        raise progress.Interrupted(progress.STOP.signal_number)
    return callback


def _round_logger(branch, config, splits, dirs, rounds, replicate, **kwargs) -> progress.RoundLogger:
    """The lottery callback of a branch's run, writing to dirs["write"]; one Keras epoch per interval.
    `rounds` (the branch trains for this replicate) and `replicate` label its progress bar."""
    return progress.RoundLogger(
        dirs["write"],
        branch_name=branch.name,
        line_style=branch.line_style,
        branch_label=branch.label,
        position=progress_bar.Position(rounds, replicate, config.replicates),
        checkpoint_every_intervals=config.checkpoint_every // config.eval_every,
        epochs_per_round=config.iterations // config.eval_every,
        validation_data=splits.validation,  # evaluated by the callback, in one compiled call
        test_data=splits.test,
        eval_batch_size=1000,
        verbose=1,
        **kwargs,
    )


def run_ticket(
    branch, config, splits, strategy, dirs, experiment, replicate, seed, initialize=None
) -> List[dict]:
    """Iterative (or one-shot) magnitude pruning: prune_iters + 1 rounds (2 when one-shot).

    `initialize(model, experiment, replicate, seed)`, if given, sets the built model's weights
    before training: a study's starting point (experiments/removal_study.py). It must set the
    same weights every time; a resumed run then restores its checkpoint over them.
    """
    total = 2 if config.one_shot else config.prune_iters + 1
    done = progress.finished_rounds(dirs["read"])
    if len(done) >= total:
        return done[:total]
    with strategy.scope():
        model = components.build_model(config, splits, seed)
        components.compile_model(model, config)
        if initialize is not None:
            initialize(model, experiment, replicate, seed)
    print(f"{config.model}: {lth_keras.get_masks(model).size:,} prunable weights")
    callback = _round_logger(
        branch,
        config,
        splits,
        dirs,
        total,
        replicate,
        rewind_step=config.rewind_step,
        one_shot=config.one_shot,
        keep_theta_0=False,  # saved to theta_0.npz before θ_k is captured
        criterion=config.mask_criterion,
        threshold_scale=config.threshold_scale,
        criterion_seed=seed,
    )
    train_rounds(config, splits, model, callback, total, progress.resume_point(dirs["read"]), dirs["read"])
    return progress.finished_rounds(dirs["write"])[:total]


def _retrain_ticket_masks(retrain) -> Callable[..., List[dict]]:
    """A control's run: each of the ticket's saved masks, its weights set by `retrain`, one round each.

    `retrain(model, masks, theta_0, seed)` sets the model's weights for the control.
    """

    def run(branch, config, splits, strategy, dirs, experiment, replicate, seed) -> List[dict]:
        ticket_dir = layout.run_dir(experiment, TICKET.name, replicate)
        return run_control(branch, config, splits, strategy, dirs, ticket_dir, seed, retrain, replicate)

    return run


def _refuse_one_shot(config) -> None:
    if config.one_shot:
        raise ValueError(
            f"--one_shot={config.one_shot!r}: controls retrain the ticket's saved masks; run them "
            "without --one_shot"
        )


def run_control(
    branch, config, splits, strategy, dirs, ticket_dir, seed, retrain, replicate, theta="theta_0"
) -> List[dict]:
    """Retrains each of the ticket's saved masks under a control, one round per level.

    `retrain(model, masks, weights, seed)` gets the ticket's θ file `theta` as `weights` (θ₀;
    a transferred ticket rewinds to θ_k if it was found with late rewinding).

    Every level starts from the model as built and compiled (`ModelReset`), so one compiled
    tf_keras model serves all levels: each level trains as on a model built and compiled for it
    alone, on the same training stream (a function of the step alone). A Keras 3 model is built
    and compiled for each level.
    """
    ticket_rounds = progress.finished_rounds(ticket_dir)  # preflight_control checked there is one
    done = {r["round"] for r in progress.finished_rounds(dirs["read"])}
    levels = ticket_rounds[: config.prune_iters + 1]
    model = fresh = stream = None
    interval_steps_written = None  # TensorBoard's, as the level before left it
    for record in levels:
        index = record["round"]
        if index in done:
            continue
        round_directory = layout.round_dir(ticket_dir, index)
        control_seed = seed + 1 + index
        with strategy.scope():
            if fresh is None:  # the first level, or a Keras 3 model (built anew for each level)
                model = components.build_model(config, splits, seed)
                components.compile_model(model, config)
                fresh = components.model_reset(model)
                if stream is None:
                    stream = components.training_batches(config, splits, model)
            else:
                fresh.reset()
            masks = _ticket_masks(round_directory, model)
            retrain(model, masks, ticket_theta(ticket_dir, model, theta), control_seed)
        callback = _round_logger(
            branch,
            config,
            splits,
            dirs,
            len(levels),
            replicate,
            first_round=index,
            is_ticket=False,
            interval_steps_written=interval_steps_written,
        )
        point = progress.resume_point(dirs["read"], only_round=index)
        train_rounds(config, splits, model, callback, 1, point, stream=stream)
        interval_steps_written = callback.interval_steps_written
    return progress.finished_rounds(dirs["write"])[: config.prune_iters + 1]


def _reinit(model, masks, theta_0, seed) -> None:
    lth_keras.reinit(model, seed=seed)


def _random_prune(model, masks, theta_0, seed) -> None:
    lth_keras.random_prune(model, theta_0, seed=seed, masks=masks)


def _keep_signs(model, masks, theta_0, seed) -> None:
    lth_keras.reinit_keep_signs(model, theta_0, seed=seed)


TICKET = Branch(
    "ticket",
    "none",
    "find the ticket by iterative (or one-shot) magnitude pruning",
    "-",
    run_ticket,
    preflight_ticket,
    label="winning ticket",
)
REINIT = Branch(
    "reinit",
    "reinit",
    "retrain each of the ticket's masks with weights drawn afresh from their initializers",
    "--",
    _retrain_ticket_masks(_reinit),
    preflight_control,
    _refuse_one_shot,
    label="random reinit",
    retrain=_reinit,
)
BRANCHES: Dict[str, Branch] = {
    branch.control: branch
    for branch in (
        TICKET,
        REINIT,
        Branch(
            "random_prune",
            "random_prune",
            "retrain a random mask with each round's per-layer counts, from θ₀",
            ":",
            _retrain_ticket_masks(_random_prune),
            preflight_control,
            _refuse_one_shot,
            label="random pruning",
            retrain=_random_prune,
        ),
        Branch(
            "signs",
            "signs",
            "retrain each of the ticket's masks with fresh magnitudes from the initializers and θ₀'s signs",
            "-.",
            _retrain_ticket_masks(_keep_signs),
            preflight_control,
            _refuse_one_shot,
            label="signs kept",
            retrain=_keep_signs,
        ),
    )
}


def selected(control: str) -> Branch:
    """The branch `--control=<control>` selects; raises ValueError naming the flag otherwise."""
    if control not in BRANCHES:
        raise ValueError(f"--control={control!r}: must be one of {list(BRANCHES)}")
    return BRANCHES[control]


def flag_help() -> str:
    """The --control help text, from the registry."""
    return "; ".join(f"{b.control}: {b.description}" for b in BRANCHES.values()) + "."


def line_styles() -> Dict[str, str]:
    """Branch name -> plot line style, in registry order (the report's column order)."""
    return {branch.name: branch.line_style for branch in BRANCHES.values()}
