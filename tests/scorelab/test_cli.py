"""The command line: cheap help, plugin listing, clean errors."""

from __future__ import annotations

import subprocess
import sys

from scorelab.cli import main


def test_help_imports_neither_torch_nor_plugins():
    code = ("import sys; from scorelab.cli import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'mlflow', 'scorelab_builtins') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugins_text_listing(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "builtins  (scorelab" in out and "samplers:" in out and "langevin" in out


def test_config_error_is_one_readable_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntarget: gaussian\nbudget: 10\nmetrics: [mmd]\nsamplers: [langevn]\n")
    assert main(["compare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: samplers[0]: unknown sampler 'langevn'; did you mean 'langevin'?")


def test_keyed_numbers_without_compiling_are_named_slow_before_any_work(tmp_path, monkeypatch, capsys):
    import pytest

    import scorelab.compare

    def stop(*args, **kwargs):
        raise RuntimeError("no work in this test")

    monkeypatch.setattr(scorelab.compare, "run_comparison", stop)
    config = tmp_path / "keyed.yaml"
    config.write_text("name: x\ntarget: gaussian\nbudget: 10\nmetrics: [mmd]\nsamplers: [langevin]\nrng: keyed\n")
    with pytest.raises(RuntimeError, match="no work"):
        main(["compare", str(config), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert "rng: keyed with compile: none makes the keyed numbers eagerly" in capsys.readouterr().err


def test_ui_command_knows_its_options():
    from scorelab.cli import build_parser

    args = build_parser().parse_args(["ui", "--port", "5123"])
    assert args.port == 5123


def test_sigterm_marks_open_runs_killed_like_ctrl_c(tmp_path):
    """kill, timeout, Slurm and docker stop send SIGTERM: the comparison's open runs end KILLED."""
    import signal
    import sqlite3
    import time

    import yaml
    from mlflow.tracking import MlflowClient

    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump({
        "name": "sigterm", "target": {"name": "gaussian", "dim": 2}, "budget": 1e9, "chains": 64, "seeds": [0],
        "metrics": ["mean_error"], "cost_weights": {"vjp": 3, "jvp": 4}, "samplers": [{"name": "langevin"}]}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "scorelab", "compare", str(config), "--quiet", "--tracking-uri", uri]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started, deadline = 0, time.monotonic() + 120
    while started < 2 and time.monotonic() < deadline:  # the parent and its child have started
        time.sleep(0.5)
        try:  # read the store directly: a second MLflow client would race the first one's schema set-up
            with sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True) as db:
                started = db.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]
        except sqlite3.Error:
            pass
    assert started >= 2, "the comparison's parent and child runs did not start within 120 s"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    client = MlflowClient(uri)
    statuses = {r.info.run_name: r.info.status
                for r in client.search_runs([client.get_experiment_by_name("sigterm").experiment_id])}
    assert len(statuses) == 2 and set(statuses.values()) == {"KILLED"}, statuses


def test_ui_prints_the_latest_comparison_and_creates_no_store(tmp_path, monkeypatch, capsys):
    import scorelab.cli.ui as ui
    from scorelab.cli import main
    from scorelab.tracking import Tracker

    monkeypatch.setattr(ui, "serve", lambda cmd: 0)  # the server itself is not started here
    missing = tmp_path / "elsewhere" / "mlflow.db"
    assert main(["ui", "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not missing.parent.exists()

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    experiment = tracker.experiment("ui")
    for name in ("compare old", "compare new"):
        parent = tracker.start_run(experiment, name, tags={"scorelab.role": "comparison"})
    tracker.start_run(experiment, "eval 0 langevin", parent=parent)
    assert main(["ui", "--tracking-uri", uri, "--port", "5055"]) == 0
    url = f"http://127.0.0.1:5055/#/experiments/{experiment}/runs/{parent}?workflowType=machine_learning"
    assert f"Latest comparison: {url}" in capsys.readouterr().out


def test_ctrl_c_stops_the_ui_server_with_sigterm_and_no_traceback(tmp_path):
    """Ctrl-C reaches `scorelab ui` alone (the server has a session of its own), which ends the server
    and its workers with SIGTERM: a stand-in server that does not pass SIGTERM on starts a worker that
    records the signal it got."""
    import signal
    import time

    got = tmp_path / "signal"
    worker = (f"import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (open({str(got)!r}, 'w').write("
              f"'TERM'), sys.exit(0))); open({str(got)!r}, 'w').write('started'); time.sleep(60)")
    server = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {worker!r}]); time.sleep(60)"
    ui = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "  # as a terminal's job has it
          f"from scorelab.cli.ui import serve; raise SystemExit(serve([{sys.executable!r}, '-c', {server!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", ui], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (got.exists() and got.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, got.read_text(), err) == (0, "TERM", "")


def test_a_resume_or_report_in_the_wrong_folder_says_where_it_looked_and_creates_nothing(tmp_path, monkeypatch,
                                                                                          capsys):
    from scorelab.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for argv in (["train", "--resume", "0123abcd"], ["report", "some-comparison"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "no MLflow store at runs/mlflow.db" in err and "MLFLOW_TRACKING_URI" in err
    assert list(tmp_path.iterdir()) == []


def test_a_model_uri_not_in_the_store_names_the_store_and_how_to_point_elsewhere(tmp_path, capsys):
    import yaml

    from scorelab.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "elsewhere", "target": {"name": "gaussian", "dim": 2}, "budget": 100, "chains": 64, "seeds": [0],
        "score": "runs:/0123456789abcdef0123456789abcdef/model", "metrics": ["mean_error"],
        "cost_weights": {"vjp": 3, "jvp": 4}, "samplers": [{"name": "langevin"}]}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["compare", str(config), "--quiet", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "no MLflow store at" in err and "MLFLOW_TRACKING_URI" in err  # none there: nothing created
    assert not (tmp_path / "mlflow.db").exists()
    from scorelab.tracking import Tracker

    Tracker(uri)  # a store without that run
    assert main(["compare", str(config), "--quiet", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert f"from {uri}" in err and "looked up in that store only" in err and "MLFLOW_TRACKING_URI" in err
