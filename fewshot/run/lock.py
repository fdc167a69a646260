"""One writer per run folder: a lock held while a process trains in it (and a short one
while an evaluation folder is put in place).

The lock is an advisory `flock` on RUN/.lock, whose text names the holder (pid, host,
start time). The operating system releases it when the holder exits, however it exits
(kill -9 included), so a crashed run never leaves a lock behind on a local disk. On a
network file system whose lock service lost track of a dead machine, the lock can stay
held: the message says which process holds it and how to break it (delete the file,
once sure that process is gone).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fewshot.run.checkpoint import naming

LOCK = ".lock"


class RunFolderBusyError(OSError):
    """Another process is writing the run folder."""


class RunLock:
    """`with RunLock(run_dir):` holds run_dir's lock; RunFolderBusyError if another holds it."""

    def __init__(self, run_dir: Path, what: str = "run folder") -> None:
        self.path = Path(run_dir) / LOCK
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(fd)
            os.close(fd)
            raise RunFolderBusyError(
                f"{self.what} {self.path.parent} is in use by {holder}; two processes "
                f"never write one. If that process is gone (its machine crashed), "
                f"delete {self.path} and retry.") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError as error:
            os.close(fd)
            raise naming(error, self.path) from error
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def describe_holder(fd: int) -> str:
    """'pid 123 on host h since ...' from the lock file's text (best effort)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "another process (the lock file names none)"


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on an existing `folder`, waiting for any holder: for short
    critical sections, such as replacing a folder inside it that another process may be
    replacing too. Nothing is written."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
