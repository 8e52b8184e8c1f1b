"""A training run's checkpoints, and the lock that lets one process at a time train the run.

Two checkpoints are kept: ``checkpoints/last.pt`` and the one before it, ``checkpoints/previous.pt``.
Where the run's artifacts are files (the default store, or one on a shared filesystem), a new
checkpoint is written to ``last.pt.tmp`` beside them, forced to disk, and rotated in with
``os.replace`` (atomic within a filesystem), so a kill at any moment leaves at least one complete
checkpoint. Elsewhere (a tracking server that keeps its own artifacts) the same rotation happens in a
local folder, and both files are uploaded, ``previous.pt`` first. Resuming reads ``last.pt`` and
falls back to ``previous.pt`` when it is missing or damaged.

While a process trains a run, it holds an exclusive lock (see ``lock``) on ``checkpoints/train.lock``;
a second ``train --resume`` of the same run is refused instead of logging every step twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import torch

from ..errors import ScorelabError
from ..tracking import Tracker
from .export import UnreadableFile, read_torch_file
from .lock import NoFileLocks, hold_lock

CHECKPOINT_DIR = "checkpoints"
LAST, PREVIOUS, LOCK = "last.pt", "previous.pt", "train.lock"


class Checkpoints:
    """The checkpoints of run ``run_id``, held (locked) from ``with`` to its end."""

    def __init__(self, tracker: Tracker, run_id: str):
        self.tracker, self.run_id = tracker, run_id
        self._artifacts = local_artifact_dir(tracker.client.get_run(run_id).info.artifact_uri)
        self.remote = self._artifacts is None
        self._staging: Path | None = None
        self._lock = None

    def __enter__(self) -> Checkpoints:
        try:
            self._lock = hold_lock(self.lock_path, self.run_id)
        except NoFileLocks:  # a filesystem without locks (some FUSE mounts): guard this machine at least
            self._lock = hold_lock(self._user_lock_path(), self.run_id)
        if self.remote:  # no files to rotate in place: the rotation happens here and is uploaded
            self._staging = Path(tempfile.mkdtemp(prefix="scorelab-checkpoints-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        self._lock.close()  # closing the file releases the lock
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    @property
    def dir(self) -> Path:
        return (self._staging or self._artifacts) / CHECKPOINT_DIR

    @property
    def lock_path(self) -> Path:
        # flock, not a heartbeat tag: the kernel drops it the instant its process dies (kill -9 included),
        # so a killed run can be resumed at once with no staleness timeout to guess, and taking it is
        # atomic, so two resumes started together cannot both win. On NFS (v4, or v3 with lockd) Linux
        # forwards flock to the server as a byte-range lock, so it holds across machines sharing the
        # store. Artifacts kept by a tracking server have no file to lock: the lock is then per user on
        # this machine, which still stops the common case (a second resume from the same account).
        return self._user_lock_path() if self.remote else self._artifacts / CHECKPOINT_DIR / LOCK

    def _user_lock_path(self) -> Path:
        key = hashlib.sha256(f"{self.tracker.uri}\n{self.run_id}".encode()).hexdigest()[:24]
        return Path.home() / ".cache" / "scorelab" / "locks" / f"{key}.lock"

    # -- saving ------------------------------------------------------------------------------------
    def save(self, state: dict) -> None:
        """Write ``state`` as ``last.pt``, keeping the one it replaces as ``previous.pt``."""
        tmp, last, previous = self.dir / f"{LAST}.tmp", self.dir / LAST, self.dir / PREVIOUS
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        rotated = last.exists()
        if rotated:
            os.replace(last, previous)
        os.replace(tmp, last)
        _fsync_dir(self.dir)
        if self.remote:
            for name in ([PREVIOUS] if rotated else []) + [LAST]:
                self.tracker.client.log_artifact(self.run_id, str(self.dir / name), CHECKPOINT_DIR)

    # -- resuming ----------------------------------------------------------------------------------
    def restore(self, load) -> int | None:
        """Give ``load`` the newest checkpoint that reads and fits (``last.pt``, else ``previous.pt``) and
        return its step; None when the run has no checkpoint yet. ``load(state)`` raises if it does not fit."""
        if self.remote:
            self._download()
        problems = {}
        for name in (LAST, PREVIOUS):
            problems[name] = _try_restore(self.dir / name, load)
            if isinstance(problems[name], int):
                if name == PREVIOUS:
                    self._report_fallback(problems[LAST], problems[name])
                return problems[name]
        if all(why == "missing" for why in problems.values()):
            return None
        raise ScorelabError(f"no readable checkpoint in run {self.run_id}: "
                            + "; ".join(f"{CHECKPOINT_DIR}/{n} is {why}" for n, why in problems.items())
                            + "; start the run again with: scorelab train CONFIG")

    def _report_fallback(self, why: str, step: int) -> None:
        bad = self.dir / LAST
        if bad.exists():  # set aside, so that the next rotation keeps previous.pt, the good one
            os.replace(bad, self.dir / f"{LAST}.bad")
        print(f"{CHECKPOINT_DIR}/{LAST} of run {self.run_id} is {why}; resuming from "
              f"{CHECKPOINT_DIR}/{PREVIOUS} at step {step}", file=sys.stderr)

    def _download(self) -> None:
        client = self.tracker.client
        listed = {a.path for a in client.list_artifacts(self.run_id, CHECKPOINT_DIR)}
        for name in (LAST, PREVIOUS):
            if f"{CHECKPOINT_DIR}/{name}" in listed:
                client.download_artifacts(self.run_id, f"{CHECKPOINT_DIR}/{name}", str(self.dir))


def _try_restore(path: Path, load) -> int | str:
    """The step of the checkpoint at ``path`` once ``load`` took it, or what is wrong with it."""
    if not path.exists():
        return "missing"
    try:
        state = read_torch_file(path)
    except UnreadableFile as exc:
        return f"unreadable ({exc})"
    try:
        load(state)
        return int(state["step"])
    except Exception as exc:  # readable, but not a checkpoint of this run's training
        return f"not a checkpoint of this run ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts where they are files (``file:`` URIs, plain paths), else None."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "":
        return Path(artifact_uri)
    return None


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a power cut after them keeps them)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
