"""Opening a store: relocatable, safe for commands started together, clear about what is wrong, and
never leaving a dead process's runs RUNNING (scorelab.store)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from mlflow.tracking import MlflowClient

from scorelab.errors import ScorelabError
from scorelab.reporting import IncompleteComparison, load_records
from scorelab.store import PID_TAG, REACH_TIMEOUT_S, open_store
from scorelab.tracking import Tracker


def test_a_moved_project_reads_and_writes_its_own_artifacts(tmp_path):
    old = tmp_path / "old" / "runs" / "mlflow.db"
    tracker = Tracker(f"sqlite:///{old}")
    run = tracker.start_run(tracker.experiment("moved"), "a run")
    tracker.log_text(run, "logged before the move", "note.txt")
    tracker.end(run, "FINISHED")
    shutil.move(tmp_path / "old", tmp_path / "new")

    uri = f"sqlite:///{tmp_path / 'new' / 'runs' / 'mlflow.db'}"
    moved = Tracker(uri)
    here = (tmp_path / "new" / "runs" / "artifacts").resolve().as_uri()
    assert moved.client.get_experiment_by_name("moved").artifact_location == here
    assert moved.client.get_run(run).info.artifact_uri.startswith(here + "/")
    assert open(moved.client.download_artifacts(run, "note.txt")).read() == "logged before the move"
    second = moved.start_run(moved.experiment("moved"), "after the move")
    moved.log_text(second, "new", "note.txt")
    assert (tmp_path / "new" / "runs" / "artifacts" / second / "artifacts" / "note.txt").exists()
    assert not (tmp_path / "old").exists()


CREATE = """
import sys
from scorelab.tracking import Tracker
print(Tracker(sys.argv[1]).experiment("shared"))
"""


def test_commands_started_together_on_a_fresh_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", CREATE, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-500:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1  # one experiment, found or created by each


def test_an_unwritable_place_and_an_absent_server_are_one_line_before_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ScorelabError, match="cannot create the MLflow store's folder"):
        open_store(f"sqlite:///{blocker / 'runs' / 'mlflow.db'}")
    # Quick, without reading a clock: one attempt to reach the server, bounded by a timeout, no retries.
    attempts, urlopen = [], urllib.request.urlopen

    def counted(url, timeout):
        attempts.append((url, timeout))
        return urlopen(url, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", counted)
    with socket_closed_port() as port:
        with pytest.raises(ScorelabError, match=f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}"):
            open_store(f"http://127.0.0.1:{port}")
    assert attempts == [(f"http://127.0.0.1:{port}/health", REACH_TIMEOUT_S)]


def socket_closed_port():
    """A port on the loopback that nothing listens on, held by a bound socket that never listens."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def held():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            yield s.getsockname()[1]

    return held()


def test_a_store_creation_interrupted_leaves_no_store_and_the_next_command_creates_it(tmp_path, monkeypatch):
    """MLflow makes its tables in seconds; an interrupt among them used to leave a store no command could
    open (a leftover ``_alembic_tmp_experiments`` table). The store is made beside its place and moved in."""
    import os

    from scorelab import store

    path = tmp_path / "runs" / "mlflow.db"
    with monkeypatch.context() as patched:
        def interrupted(*args):
            raise KeyboardInterrupt

        patched.setattr(os, "replace", interrupted)  # the schema made, the move not yet done
        with pytest.raises(KeyboardInterrupt):
            open_store(f"sqlite:///{path}")
    assert not path.exists()
    (tmp_path / "runs" / ".mlflow.db.creating-1-2").write_bytes(b"half a schema")  # remains of another cut short
    tracker = Tracker(f"sqlite:///{path}")
    run = tracker.start_run(tracker.experiment("after"), "a run")
    tracker.end(run)
    assert store.sqlite_path(tracker.uri) == path and not list((tmp_path / "runs").glob(".mlflow.db.creating-*"))
    assert MlflowClient(tracker.uri).get_run(run).info.status == "FINISHED"


def test_reading_a_missing_store_creates_nothing(tmp_path):
    db = tmp_path / "runs" / "mlflow.db"
    with pytest.raises(ScorelabError, match="no MLflow store at .*MLFLOW_TRACKING_URI"):
        open_store(f"sqlite:///{db}", write=False)
    assert not db.exists() and not db.parent.exists()


def test_runs_of_a_dead_process_are_marked_killed_by_the_next_command(tracking_uri):
    tracker = Tracker(tracking_uri)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tracker.start_run(tracker.experiment("e"), "orphan")
    tracker.client.set_tag(orphan, PID_TAG, dead.stdout.strip())
    live = tracker.start_run(tracker.experiment("e"), "live")  # this process: alive
    client = open_store(tracking_uri)
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(live).info.status == "RUNNING"


KILLED_COMPARISON = {
    "name": "killed", "target": {"name": "gaussian", "dim": 2}, "budget": 1e9, "chains": 64, "seeds": [0, 1],
    "metrics": ["mean_error"], "cost_weights": {"vjp": 3, "jvp": 4}, "samplers": [{"name": "langevin"}]}


def test_kill_9_leaves_a_comparison_that_report_calls_incomplete(tmp_path, capsys):
    """kill -9 gives no chance to clean up: the next command marks the runs KILLED, and report refuses
    to print speedups from the comparison unless asked, naming what is missing."""
    from scorelab.cli import main

    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(KILLED_COMPARISON))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "scorelab", "compare", str(config), "--quiet", "--tracking-uri", uri]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _running(tmp_path / "mlflow.db") < 2:  # the parent and a child
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert main(["report", "killed", "--tracking-uri", uri, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "incomplete" in err and "the parent run is KILLED" in err and "never run: langevin seed 1" in err
    client = MlflowClient(uri)
    assert {r.info.status for r in client.search_runs([client.get_experiment_by_name("killed").experiment_id])} == {
        "KILLED"}
    with pytest.raises(IncompleteComparison):
        load_records(client, "killed")
    assert main(["report", "killed", "--partial", "--tracking-uri", uri, "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.startswith("INCOMPLETE comparison (--partial)")
    assert (tmp_path / "r" / "report.md").read_text().startswith("INCOMPLETE comparison")


def _running(db) -> int:
    import sqlite3

    try:  # read the store directly: a second MLflow client would race the first one's schema set-up
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]
    except sqlite3.Error:
        return 0
