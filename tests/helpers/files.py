"""Looking at and damaging stored files, for the tests of integrity and refusals."""

import hashlib
import os
import subprocess

from experiments.manifest import Manifest


def tree_state(root) -> dict:
    """Every directory and file below `root`: each file's SHA-256 and modification time.

    Equal states mean nothing was created, deleted, changed or rewritten (even with the same bytes).
    """
    state = {}
    for directory, _, names in os.walk(root):
        state[directory] = "directory"
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                state[path] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return state


def truncate(path, size=None) -> None:
    """Cuts the file at `path` to `size` bytes (default: half), in place."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "r+b") as f:
        f.truncate(len(data) // 2 if size is None else size)


def garbage(path) -> None:
    with open(path, "w") as f:
        f.write("{not json")


def rerecord(path) -> None:
    """Records the file at `path` anew in its run's manifest, as if written so (a foreign file
    that verifies, to reach the checks behind the manifest's)."""
    run = path
    while not os.path.exists(os.path.join(run, "manifest.json")):
        run = os.path.dirname(run)
    Manifest.load(run).record(path)


def copy_tree(source, target) -> str:
    """A copy of `source` at `target` that keeps hard links (a run's rounds link its θ files)."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return str(target)
