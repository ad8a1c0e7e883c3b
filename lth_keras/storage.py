"""Atomic reading and writing of named arrays and JSON, the only file I/O of the library.

Every write goes to a temporary file in the same directory and is then renamed over
the target, so a crash leaves either the old file or the new one, never half of one.
A write that fails for lack of space raises `DiskFullError` naming the file.
"""

import collections.abc
import errno
import json
import os
import tempfile
import zipfile
from typing import Dict, Mapping

import numpy as np


class DiskFullError(OSError):
    """No space left on the device while writing a file; the old file, if any, is intact."""

    def __init__(self, path: str):
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path}")
        self.path = path

    def __str__(self):
        return self.strerror


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: str, write_fn, mode: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp_path = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results should read like any file
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException as e:
        if tmp_path is not None and os.path.exists(tmp_path):
            os.remove(tmp_path)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise DiskFullError(path) from e
        raise


def save_arrays(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Writes `arrays` (name -> array) to an .npz file at `path`, atomically."""
    _atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}), "wb")


def load_arrays(path: str) -> Dict[str, np.ndarray]:
    """Reads an .npz file written by `save_arrays`; raises ValueError naming a bad file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable array file ({e})") from e


def save_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path`, atomically."""
    _atomic_write(path, lambda f: f.write(data), "wb")


def save_json(path: str, value) -> None:
    """Writes `value` as indented JSON to `path`, atomically."""
    _atomic_write(path, lambda f: json.dump(value, f, indent=2, sort_keys=True), "w")


def load_json(path: str):
    """Reads JSON from `path`; raises ValueError naming a bad file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from e


class NamedArrays(collections.abc.Mapping):
    """An immutable name -> array mapping that can be written to and read from an .npz."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self._arrays = {key: self._convert(key, value) for key, value in arrays.items()}

    def _convert(self, key: str, value) -> np.ndarray:
        """Checks and copies one array; subclasses add their own rules."""
        return np.array(value)

    def __getitem__(self, key):
        return self._arrays[key]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def save_file(self, path: str) -> str:
        save_arrays(path, self._arrays)
        return path

    @classmethod
    def load_file(cls, path: str):
        return cls(load_arrays(path))
