"""Opening the MLflow store a command works on, safely: before any work, once per command.

- **Reachable and writable**, or one clear line: a read-only folder, a missing parent directory or a
  tracking server that does not answer within seconds is reported before the expensive setup.
- **Concurrent commands**: a fresh sqlite store is created under a file lock beside it, so commands
  started together do not race in MLflow's schema creation; it is made in a file beside it and moved
  into place whole, so an interrupt while MLflow makes its tables leaves no half-made store.
- **Relocatable**: MLflow records artifact locations as absolute paths. A project folder that was
  moved or copied would write into, and read from, the original's ``runs/artifacts``; on opening, a
  store's own artifact root (``artifacts/`` beside the database) is rewritten to where it now lies.
- **No run left RUNNING by a dead process**: every run scorelab starts carries its host and process
  id; a RUNNING run whose process is gone (``kill -9``, a power cut) is marked KILLED, keeping what
  it had logged.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ScorelabError

#: Tags every run scorelab starts carries, so a later command can tell whether its process still lives.
HOST_TAG, PID_TAG = "scorelab.host", "scorelab.pid"
REACH_TIMEOUT_S = 5.0

#: The URIs of a trained model in a store, as a comparison's ``score`` key gives them.
MODEL_URI = re.compile(r"runs:/[\w\-]+/[\w\-./]+|models:/[\w\-. ]+(/\d+|@[\w\-]+)")


def check_model_uri(uri: str) -> None:
    """ValueError unless ``uri`` is ``runs:/<run-id>/<path>`` or ``models:/<name>/<version>`` (or ``@alias``)."""
    if not MODEL_URI.fullmatch(uri):
        raise ValueError(f"'{uri}' is not a model URI: expected runs:/<run-id>/model or models:/<name>/<version>")


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str) -> str | None:
    """For a sqlite store, artifacts live beside the database (``runs/artifacts``); a server decides its own."""
    path = sqlite_path(uri)
    return None if path is None else (path.parent / "artifacts").resolve().as_uri()


def process_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def open_store(uri: str, *, write: bool = True):
    """An ``MlflowClient`` on ``uri``, after the checks above. ``write=False`` for commands that only
    read: a missing store is an error (nothing is created), and a read-only one is read as it is."""
    from mlflow.tracking import MlflowClient

    path = sqlite_path(uri)
    if path is None:
        if uri.startswith(("http://", "https://")):
            _check_reachable(uri)
        return MlflowClient(uri)
    if not write:
        if not path.exists():  # create nothing on a failed lookup
            raise ScorelabError(f"no MLflow store at {path} (tracking URI {uri}); run from the project folder, "
                                "or point to the store with --tracking-uri or MLFLOW_TRACKING_URI")
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            return MlflowClient(uri)
    _check_writable(path, uri)
    with _locked(path):
        if not path.exists():
            _create(path)
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # MLflow fills an empty file with tables; one process at a time
        _relocate(path)
        _end_dead_runs(client)
    return client


def _create(path: Path) -> None:
    """A new store, its schema made in a file beside it and moved into place whole: MLflow's migrations
    take seconds, and one interrupted in place leaves a store every later command fails to open."""
    from mlflow.tracking import MlflowClient

    for remains in path.parent.glob(f".{path.name}.creating-*"):  # of creations cut short (we hold the lock)
        remains.unlink()
    # A name of its own: MLflow keeps each URI's store, schema and all, for the rest of the process.
    making = path.with_name(f".{path.name}.creating-{os.getpid()}-{time.time_ns()}")
    MlflowClient(f"sqlite:///{making}").search_experiments(max_results=1)
    os.replace(making, path)


def _check_reachable(uri: str) -> None:
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACH_TIMEOUT_S).close()
    except (urllib.error.URLError, OSError) as exc:
        raise ScorelabError(f"cannot reach the MLflow tracking server at {uri} within {REACH_TIMEOUT_S:g} s "
                            f"({getattr(exc, 'reason', exc)}); start it, or pass another --tracking-uri") from None


def _check_writable(path: Path, uri: str) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScorelabError(f"cannot create the MLflow store's folder {folder} ({exc.strerror}); "
                            f"pass --tracking-uri with a writable place (tracking URI {uri})") from None
    blocked = [p for p in (folder, path, folder / "artifacts") if p.exists() and not os.access(p, os.W_OK)]
    if blocked:
        raise ScorelabError(f"the MLflow store is read-only: {blocked[0]} is not writable (tracking URI {uri}); "
                            "make it writable or pass --tracking-uri with a writable place")


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# MLflow has no API to move an artifact root (an experiment's location is fixed when it is created),
# so the store's own root is rewritten in its tables: experiments, runs, logged models, model versions.
_LOCATIONS = [("experiments", "artifact_location"), ("runs", "artifact_uri"), ("logged_models", "artifact_location"),
              ("model_versions", "source"), ("model_versions", "storage_location")]


def _relocate(path: Path) -> None:
    here = (path.parent / "artifacts").resolve().as_uri()
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
        roots = {row[0] for row in db.execute("SELECT artifact_location FROM experiments")}
        for old in roots:
            if old and old != here and old.startswith("file://") and old.endswith("/artifacts"):
                for table, column in _LOCATIONS:
                    if table in _tables(db):
                        db.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # fixed names
                                   f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                                   (here, len(old) + 1, old, len(old) + 1, old + "/"))


def _tables(db) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _end_dead_runs(client) -> None:
    """Mark KILLED every RUNNING run started on this host by a process that no longer exists."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=50000):
        tags = run.data.tags
        if orphaned(tags):
            client.set_tag(run.info.run_id, "scorelab.status", "killed")
            client.set_terminated(run.info.run_id, "KILLED")
            print(f"marked run {run.info.run_id} ({run.info.run_name}) KILLED: its process {tags[PID_TAG]} is gone")


def orphaned(tags: dict[str, str]) -> bool:
    """Whether a RUNNING run with these tags was started on this host by a process that no longer exists."""
    return tags.get(HOST_TAG) == socket.gethostname() and PID_TAG in tags and not _alive(int(tags[PID_TAG]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
