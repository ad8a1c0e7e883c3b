"""Is a run's stored state whole? Each damaged or missing file, what it holds, and the way on.

`problems(run)` checks a run directory (one replicate of a branch) against its manifest
and says, for each file that fails, what depends on it and whether the run holds another
good copy of what it held: θ files are linked into each round (a deleted link is rebuilt from
another), a round's record is also in the progress saved with any later checkpoint, and a
round's masks are in its checkpoint while that is kept. `rebuild` restores those; the
runner does it before training, and refuses (writing nothing) when any other file fails.
"""

import contextlib
import dataclasses
import os
import re
from typing import Callable, List, Optional

import tensorflow as tf

from experiments import layout
from experiments.manifest import MANIFEST_FILE, Manifest
import lth_keras
from experiments import checkpoints
from lth_keras import storage, tickets

START_ANEW = "re-run with --overwrite to start anew"


def redo_from(round_directory: str) -> str:
    """What to do about a bad file of a round."""
    return f"delete {round_directory} and any later round_* directories to redo from there, or {START_ANEW}"


class RunFileError(ValueError):
    """A stored file of a run is unreadable, missing, damaged or from another experiment."""


@contextlib.contextmanager
def reading(path: str, advice: str):
    """Turns any failure to read or apply the file at `path` into a RunFileError saying what to do."""
    try:
        yield
    except RunFileError:
        raise
    except Exception as e:  # TF and numpy raise many kinds for a damaged file
        raise RunFileError(f"cannot use {path}: {e}. To go on: {advice}") from e


@dataclasses.dataclass
class Problem:
    """One stored file of a run that cannot be trusted."""

    path: str
    what: str  # 'missing', 'damaged: ...'
    holds: str  # what depends on it
    source: Optional[str] = None  # another good copy of what it held, if the run has one
    advice: str = START_ANEW  # what to do when there is none

    def describe(self) -> str:
        if self.source is not None:
            way_on = f"it can be rebuilt from {self.source}: re-run the command that wrote it"
        else:
            way_on = f"there is no other copy of it. To go on: {self.advice}"
        return f"cannot use {self.path}: {self.what}. It holds {self.holds}; {way_on}"


def in_checkpoint(path: str) -> bool:
    """True for a file of a round's checkpoint (which only resuming that run reads)."""
    return os.sep + "checkpoint" + os.sep in os.sep + path


_ROUND = re.compile(r"round_(\d+)$")


def _round_of(relative_path: str) -> Optional[int]:
    match = _ROUND.match(relative_path.split(os.sep)[0])
    return int(match.group(1)) if match else None


def round_of(run: str, path: str) -> Optional[int]:
    """The round a file of `run` belongs to; None for the run's own files (θ, the manifest)."""
    return _round_of(os.path.relpath(path, run))


def damaged_rounds(run: str, found: List[Problem]) -> List[int]:
    """The rounds whose ticket (masks, θ, record) is among `found`; checkpoints do not count."""
    return sorted({round_of(run, p.path) for p in found if not in_checkpoint(p.path)} - {None})


def record_as_is(run: str) -> int:
    """Records every file of `run` as it is now in a new manifest; returns how many.

    For a run whose manifest was lost, or written before manifests: the files are trusted
    as they stand, so do this only for files you know to be good.
    """
    manifest = Manifest(run)
    paths = [os.path.join(run, p) for p in manifest.unrecorded()]
    manifest.record(*paths)
    return len(paths)


def _holds(relative_path: str) -> str:
    """What a run's file holds and what depends on it, in words."""
    name = os.path.basename(relative_path)
    index = _round_of(relative_path)
    if index is None:
        return {
            "theta_0.npz": "θ₀, the weights this replicate's rounds rewind to (resuming needs it)",
            "theta_k.npz": "θ_k, the early iterate this replicate's rounds rewind to (resuming needs it)",
            MANIFEST_FILE: "the size and digest of each file of this replicate",
        }.get(name, "a file of this replicate")
    if in_checkpoint(relative_path):
        return f"a checkpoint of round {index}: resuming round {index}, or pruning round {index + 1} from it"
    return {
        tickets.MASKS_FILE: f"round {index}'s masks: its ticket, round {index + 1}'s pruning, the controls",
        tickets.ROUNDS_FILE: f"round {index}'s record: its numbers in the report",
        "theta_0.npz": f"the θ₀ of round {index}'s ticket",
        "theta_k.npz": f"the θ_k of round {index}'s ticket",
        layout.DIVERGED_FILE: f"where round {index} diverged",
    }.get(name, f"a file of round {index}")


def _advice(run: str, relative_path: str) -> str:
    index, name = _round_of(relative_path), os.path.basename(relative_path)
    if name.startswith("theta_"):  # every round rewinds to it: no round can be redone without it
        return START_ANEW
    if name == layout.DIVERGED_FILE:
        return f"delete {os.path.join(run, relative_path)} to retry round {index} from its last checkpoint"
    if index is None:
        return START_ANEW
    return redo_from(layout.round_dir(run, index))


def _verified_checkpoint(manifest: Manifest, round_directory: str) -> Optional[str]:
    """The newest checkpoint of a round whose recorded files all verify, or None."""
    directory = layout.checkpoint_dir(round_directory)
    prefix = manifest.relative(directory) + os.sep
    files = [p for p in manifest.entries if p.startswith(prefix)]
    if not files or any(manifest.problem(p) for p in files):
        return None
    return tf.train.latest_checkpoint(directory)


def _verified_states(manifest: Manifest, run: str):
    """Paths of the run's recorded progress files (saved with checkpoints) that verify."""
    return [
        os.path.join(run, p)
        for p in sorted(manifest.entries)
        if re.search(r"state-\d+\.json$", p) and manifest.problem(p) is None
    ]


def _source(manifest: Manifest, run: str, relative_path: str) -> Optional[str]:
    """Another good copy of what the file held, in the same run, or None."""
    name, index = os.path.basename(relative_path), _round_of(relative_path)
    if name.startswith("theta_") and name.endswith(".npz"):
        digest = manifest.entries[relative_path]["sha256"]
        for other, entry in sorted(manifest.entries.items()):
            if other != relative_path and entry["sha256"] == digest and manifest.problem(other) is None:
                return os.path.join(run, other)
    elif index is not None and name == tickets.MASKS_FILE:
        checkpoint = _verified_checkpoint(manifest, layout.round_dir(run, index))
        return os.path.dirname(checkpoint) if checkpoint else None
    elif index is not None and name == tickets.ROUNDS_FILE:
        for state in _verified_states(manifest, run):
            rounds = storage.load_json(state)["callback"]["rounds"]
            if any(r["round"] == index for r in rounds):
                return state
    return None


def problems(run: str) -> List[Problem]:
    """Every file of `run` its manifest records that is missing or damaged ([] for a new run)."""
    if not os.path.isdir(run):
        return []
    manifest_path = os.path.join(run, MANIFEST_FILE)
    try:
        manifest = Manifest.load(run)
    except ValueError as e:
        return [Problem(manifest_path, f"damaged: {e}", _holds(MANIFEST_FILE), advice=_remake_manifest(run))]
    if not manifest.entries and os.path.exists(manifest_path):
        return []
    if not manifest.entries and Manifest(run).unrecorded():
        return [
            Problem(
                manifest_path,
                "missing (the run was written by an lth_keras without manifests, or it was deleted)",
                _holds(MANIFEST_FILE),
                advice=_remake_manifest(run),
            )
        ]
    return [
        Problem(
            os.path.join(run, relative_path),
            what,
            _holds(relative_path),
            _source(manifest, run, relative_path),
            _advice(run, relative_path),
        )
        for relative_path, what in manifest.problems().items()
    ]


def _remake_manifest(run: str) -> str:
    return (
        f"if you trust the files as they are, `python -m experiments.verify --record_as_is {run}` "
        f"records them anew; or {START_ANEW}"
    )


def refuse(found: List[Problem]) -> None:
    """Raises RunFileError describing each problem, if there are any."""
    if found:
        raise RunFileError("\n".join(problem.describe() for problem in found))


def rebuild(run: str, found: List[Problem], build_model: Callable[[], object]) -> None:
    """Rebuilds each file of `found` from its source, records it and says so in one line.

    `build_model()` returns a fresh model of the run's kind, into which a round's
    checkpoint is read to take its masks.
    """
    manifest = Manifest.load(run)
    for problem in found:
        name = os.path.basename(problem.path)
        if name.startswith("theta_"):
            tickets.link_or_copy(problem.source, problem.path)
        elif name == tickets.ROUNDS_FILE:
            index = _round_of(manifest.relative(problem.path))
            rounds = storage.load_json(problem.source)["callback"]["rounds"]
            storage.save_json(problem.path, [r for r in rounds if r["round"] <= index])
        else:
            model = build_model()
            checkpoints.restore_model(model, tf.train.latest_checkpoint(problem.source))
            lth_keras.get_masks(model).save(os.path.dirname(problem.path))
        manifest.record(problem.path)
        print(f"rebuilt {problem.path} ({problem.what}) from {problem.source}")
