"""The lock that lets one process at a time train a run: an exclusive ``flock`` on a file, which the
kernel releases when its process ends, however it ends. The file says who holds it."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import ScorelabError


class RunInUse(ScorelabError):
    """Another process is training this run."""


class NoFileLocks(OSError):
    """The filesystem of a lock file does not support locks."""


def hold_lock(path: Path, run_id: str):
    """The open lock file, once this process holds its lock; RunInUse naming the holder otherwise."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
    except OSError as exc:
        raise ScorelabError(f"cannot create the lock file {path} of run {run_id} ({exc.strerror}); "
                            "is the store writable?") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise NoFileLocks(exc.errno, exc.strerror) from None
        raise RunInUse(f"run {run_id} is still training in another process ({holder}); a second one would "
                       "log every step twice. Wait for it to end, or stop it, then resume") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    f.flush()
    return f
