"""One process per branch of an experiment: a lock file holding the owner's pid and host.

The file is created atomically and exclusively, already holding its content (written to a
temporary file, then hard-linked to the lock's name, which fails if the name exists: O_EXCL
semantics without an empty-file moment), and removed when the run ends. A lock
left by a process that died without removing it (SIGKILL, power loss) is stale: a run on
the same host sees its pid is gone and takes the lock over. A lock from another host
cannot be checked and is never taken over.
"""

import fcntl
import json
import os
import socket
from typing import Optional


class LockedError(ValueError):
    """Another live process holds the lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _read_owner(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}


def is_stale(owner: dict) -> bool:
    """True when the owner ran on this host and its process is gone (or the file is unreadable)."""
    if "pid" not in owner:
        return True  # not written by RunLock (the lock never exists half-written)
    return owner.get("host") == socket.gethostname() and not _pid_alive(owner["pid"])


def describe(owner: dict) -> str:
    return f"pid {owner.get('pid')} on {owner.get('host')}"


def live_owner(path: str) -> Optional[dict]:
    """The owner recorded in the lock at `path`, unless there is none or it is stale."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        owner = _read_owner(fd)
    finally:
        os.close(fd)
    return None if is_stale(owner) else owner


class RunLock:
    """A context manager holding the lock file `path` for this process.

    Raises LockedError naming the owner's pid and host when a live process holds it.
    """

    def __init__(self, path: str):
        self.path = path
        self.held = False
        self._created_directories = []

    def __enter__(self) -> "RunLock":
        self._make_directories(os.path.dirname(os.path.abspath(self.path)))
        try:
            self._acquire()
        except BaseException:
            self._remove_created_directories()
            raise
        self.held = True
        return self

    def _make_directories(self, directory: str) -> None:
        """Creates `directory` and its missing parents, remembering them for `__exit__`."""
        missing = []
        while not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        os.makedirs(missing[0] if missing else directory, exist_ok=True)
        self._created_directories = missing  # innermost first

    def _remove_created_directories(self) -> None:
        """A refused run leaves no directory behind: those the lock created go if still empty."""
        for directory in self._created_directories:
            try:
                os.rmdir(directory)
            except OSError:  # not empty: the run wrote there
                return

    def _acquire(self) -> None:
        while not self._try_create():
            owner = self._remove_if_stale()
            if owner is not None:
                raise LockedError(
                    f"{self.path}: another run ({describe(owner)}) is writing this experiment; "
                    "wait for it to finish (or stop it), then re-run. If that process is gone, "
                    "delete the lock file"
                )

    def __exit__(self, *exc_info) -> None:
        if self.held:
            self.held = False
            try:
                os.remove(self.path)
            except FileNotFoundError:  # deleted by hand, or by --overwrite of a stale experiment
                pass
            self._remove_created_directories()

    def _try_create(self) -> bool:
        tmp_path = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp_path, "w") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
        try:
            os.link(tmp_path, self.path)
        except FileExistsError:
            return False
        finally:
            os.remove(tmp_path)
        return True

    def _remove_if_stale(self) -> Optional[dict]:
        """Deletes the lock if its owner is dead and returns None; else returns the live owner.

        The check and the delete happen under flock on the same inode, so two processes
        taking over one stale lock cannot delete each other's fresh lock.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None  # released meanwhile: try again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                return None
            owner = _read_owner(fd)
            if not same_file:
                return None
            if not is_stale(owner):
                return owner
            print(f"taking over the stale lock {self.path} (its {describe(owner)} is no longer running)")
            os.remove(self.path)
            return None
        finally:
            os.close(fd)
