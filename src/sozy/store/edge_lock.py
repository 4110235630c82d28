"""One process per embedded store: an exclusive lock file beside its directory."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path

from .base import StoreInUse


class StoreLock:
    """An exclusive ``fcntl`` lock on a file, held while the store is open.

    The kernel drops it when the process dies, so a crashed crawler never leaves a
    stale lock behind. The file records who holds it, for the error message.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: Path) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StoreInUse(in_use_message(what, holder)) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:400]}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def in_use_message(what: Path, holder: str) -> str:
    return (
        f"the face store {what} is in use by another process ({holder}). "
        "The embedded store serves one process at a time: stop that process first, or, to crawl and "
        "serve at once, run a Qdrant server and set store.url (SOZY_STORE_URL); "
        "`python -m sozy.store copy` moves the faces there."
    )
