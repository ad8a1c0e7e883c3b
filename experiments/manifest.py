"""A replicate's manifest: each file the run wrote, with its size and SHA-256 digest.

    <run>/manifest.json    {"<path relative to the run>": {"size": bytes, "sha256": hex}, ...}

The run records a file right after writing it and forgets a file before deleting it; the
manifest is rewritten atomically each time, so a crash in between leaves a file unrecorded
(read as it is), never a recorded file that looks damaged. Before a run trusts a stored file, and
before it deletes the last good copy of one, it checks the file against its entry.
TensorBoard's event files grow as the run goes and nothing is resumed from them, so
they are not recorded.
"""

import hashlib
import os
from typing import Dict, List, Optional

from lth_keras import storage

MANIFEST_FILE = "manifest.json"
NOT_RECORDED = ("tensorboard",)  # top-level entries of a run the manifest leaves out
# TensorFlow's pointer to a directory's newest checkpoint, rewritten by every save (a crash
# between a save and its record would make it look damaged); runs check it by reading it.
NOT_RECORDED_NAMES = ("checkpoint",)
_CHUNK = 1 << 20


def file_entry(path: str) -> Dict[str, object]:
    """The size and SHA-256 digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return {"size": os.path.getsize(path), "sha256": digest.hexdigest()}


class Manifest:
    """The recorded files of one run directory (a replicate of a branch)."""

    def __init__(self, run: str, entries: Optional[Dict[str, dict]] = None):
        self.run = run
        self.entries = dict(entries or {})
        self._digests = {}  # (device, inode, size, mtime) -> entry: a round's θ links are one file

    def _entry(self, path: str) -> Dict[str, object]:
        stat = os.stat(path)
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = file_entry(path)
        return self._digests[key]

    @property
    def path(self) -> str:
        return os.path.join(self.run, MANIFEST_FILE)

    @classmethod
    def load(cls, run: str) -> "Manifest":
        """The run's manifest; empty when it has none. Raises ValueError naming a bad file."""
        path = os.path.join(run, MANIFEST_FILE)
        if not os.path.exists(path):
            return cls(run)
        entries = storage.load_json(path)
        if not isinstance(entries, dict) or not all(
            isinstance(e, dict) and {"size", "sha256"} <= set(e) for e in entries.values()
        ):
            raise ValueError(f"{path} is not a manifest")
        return cls(run, entries)

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.run)

    def record(self, *paths: str) -> None:
        """Records the files at `paths` as they are now, then saves the manifest."""
        for path in paths:
            self.entries[self.relative(path)] = self._entry(path)
        self._save()

    def forget(self, path: str) -> None:
        """Drops the entries of the file or directory `path` (deleted by the run), then saves."""
        prefix = self.relative(path)
        kept = {k: v for k, v in self.entries.items() if k != prefix and not k.startswith(prefix + os.sep)}
        if len(kept) != len(self.entries):
            self.entries = kept
            self._save()

    def _save(self) -> None:
        storage.save_json(self.path, self.entries)

    def problem(self, relative_path: str) -> Optional[str]:
        """What is wrong with a recorded file ('missing', 'damaged: ...'), or None if it verifies."""
        path = os.path.join(self.run, relative_path)
        if not os.path.isfile(path):
            return "missing"
        expected = self.entries[relative_path]
        found = self._entry(path)
        if found["size"] != expected["size"]:
            return f"damaged: {found['size']:,} bytes, {expected['size']:,} when written"
        if found["sha256"] != expected["sha256"]:
            return "damaged: its contents differ from when it was written (SHA-256)"
        return None

    def problems(self) -> Dict[str, str]:
        """Relative path -> problem, for every recorded file that does not verify."""
        found = {}
        for relative_path in sorted(self.entries):
            problem = self.problem(relative_path)
            if problem is not None:
                found[relative_path] = problem
        return found

    def verifies(self, path: str) -> bool:
        """True when the file at `path` is recorded and unchanged."""
        relative_path = self.relative(path)
        return relative_path in self.entries and self.problem(relative_path) is None

    def unrecorded(self) -> List[str]:
        """Relative paths of files in the run the manifest does not list (a crash between
        writing one and recording it, or a file put there by hand)."""
        found = []
        for directory, subdirectories, names in os.walk(self.run):
            if directory == self.run:
                subdirectories[:] = [d for d in subdirectories if d not in NOT_RECORDED]
            for name in names:
                relative_path = self.relative(os.path.join(directory, name))
                if relative_path not in self.entries and relative_path != MANIFEST_FILE:
                    if not name.startswith(".tmp-") and name not in NOT_RECORDED_NAMES:
                        found.append(relative_path)
        return sorted(found)
