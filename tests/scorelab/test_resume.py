"""A comparison killed part way and resumed (``scorelab compare CONFIG --resume``) gives the answer an
uninterrupted one gives, in its own parent run, keeping what it had logged; another config, a finished
comparison or one still running is refused."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from scorelab.analysis import select_best
from scorelab.compare import run_comparison
from scorelab.config import parse_comparison
from scorelab.errors import ConfigError, ScorelabError
from scorelab.reporting import SUPERSEDED_TAG, load_records
from scorelab.store import PID_TAG
from scorelab.tracking import Tracker
from tests.helpers import interrupted_child
from tests.scorelab.test_compare import BASE

# Two settings of Langevin tuned on two seeds, then two samplers on two seeds: 8 children.
CONFIG = {**BASE, "name": "resumed"}
KILLED_AT = 6  # the child interrupted: the second evaluation run, after tuning has chosen


def _killed(host, uri: str, monkeypatch, at: int) -> MlflowClient:
    """CONFIG's comparison on the store at ``uri``, interrupted at its ``at``-th child (from 1)."""
    with monkeypatch.context() as patched:
        interrupted_child(patched, at)
        with pytest.raises(KeyboardInterrupt):
            run_comparison(parse_comparison(CONFIG, None, host), Tracker(uri))
    return MlflowClient(uri)


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _curves(records):
    """Each run's numbers (a record rebuilt from MLflow has an empty curve for a metric not measured)."""
    return {(r.label, r.seed, r.role): (r.status, {k: v for k, v in r.curves.items() if v}, r.counts, r.cost)
            for r in records}


def _answer(result):
    """What a comparison concluded, its timings apart (wall seconds differ between any two runs)."""
    return [dataclasses.replace(r, wall_to_quality=0.0, speedup_wall=(0.0,) * 3) for r in result.rows]


def test_a_killed_comparison_resumed_gives_the_uninterrupted_answer(host, tmp_path, monkeypatch):
    whole = run_comparison(parse_comparison(CONFIG, None, host), Tracker(f"sqlite:///{tmp_path / 'whole.db'}"))

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = _killed(host, uri, monkeypatch, KILLED_AT)
    (killed,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id],
                                   "attributes.status = 'KILLED' and tags.`scorelab.role` = 'evaluation'")

    resumed = run_comparison(parse_comparison(CONFIG, None, host), Tracker(uri), resume="resumed")
    parent = client.get_run(resumed.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["scorelab.status"] == "ok"
    assert killed.data.tags["mlflow.parentRunId"] == resumed.parent_run_id  # the killed comparison's own parent
    assert (parent.data.tags["scorelab.resumed_after"], parent.data.tags["scorelab.resumed_kept"],
            parent.data.tags["scorelab.resumed_rerun"]) == ("killed", str(KILLED_AT - 1), "1")
    # The answer and every run's numbers are the uninterrupted comparison's.
    assert _curves(resumed.runs) == _curves(whole.runs)
    assert _answer(resumed) == _answer(whole)
    # What the killed child logged stays, marked as run again; the report reads the runs that stand.
    assert client.get_run(killed.info.run_id).data.tags[SUPERSEDED_TAG]
    _, _, reported, _ = load_records(client, resumed.parent_run_id)
    assert _curves(reported) == _curves(whole.runs) and killed.info.run_id not in {r.run_id for r in reported}
    # In the order an uninterrupted comparison has them (the rerun child ran last), in memory and rebuilt.
    assert [r.run_id for r in reported] == [r.run_id for r in resumed.runs]
    assert [(r.label, r.seed, r.role) for r in resumed.runs] == [(r.label, r.seed, r.role) for r in whole.runs]


def test_tuning_alone_chooses_the_setting_a_resume_evaluates(host, tracking_uri, monkeypatch):
    """The kept evaluation runs of a resumed comparison do not enter tuning's choice: the first evaluation
    run of the chosen setting is made to read as diverged before the resume, and the setting stays."""
    client = _killed(host, tracking_uri, monkeypatch, KILLED_AT)
    (evaluated,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id],
                                      "attributes.status = 'FINISHED' and tags.`scorelab.role` = 'evaluation'")
    chosen = evaluated.data.tags["scorelab.setting"]
    client.log_metric(evaluated.info.run_id, "diverged_at_cost", 1.0)

    resumed = run_comparison(parse_comparison(CONFIG, None, host), Tracker(tracking_uri), resume="resumed")
    tuned = select_best([r for r in resumed.runs if r.role == "tuning"], resumed.study)["langevin"]
    assert tuned == chosen
    assert {r.label for r in resumed.runs if r.role == "evaluation" and r.sampler == "langevin"} == {chosen}


def test_only_the_same_unfinished_comparison_is_resumed(host, tracking_uri, monkeypatch):
    _killed(host, tracking_uri, monkeypatch, 1)
    for changed, key in [({"budget": 80}, "budget"), ({"cost_weights": {"vjp": 5, "jvp": 4}}, "cost_weights")]:
        with pytest.raises(ConfigError, match=rf"resumed.yaml: {key}: comparison \w+ ran another config; it differs "
                                              rf"in {key}\. Resume it with the config it ran"):
            run_comparison(parse_comparison({**CONFIG, **changed}, "resumed.yaml", host), Tracker(tracking_uri),
                           resume="resumed")
    # Running, as far as the store knows: refused while its process lives, resumed once it is gone (a tracking
    # server's runs are not marked KILLED by the next command, as a sqlite store's are).
    tracker = Tracker(tracking_uri)
    client = tracker.client
    (parent,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id],
                                   "tags.`scorelab.role` = 'comparison'")
    client.update_run(parent.info.run_id, status="RUNNING")
    with pytest.raises(ScorelabError, match=rf"is still running \(process {os.getpid()} on "):
        run_comparison(parse_comparison(CONFIG, None, host), tracker, resume="resumed")
    client.set_tag(parent.info.run_id, PID_TAG, str(_dead_pid()))
    assert run_comparison(parse_comparison(CONFIG, None, host), tracker, resume="resumed").parent_run_id == \
        parent.info.run_id
    with pytest.raises(ScorelabError, match="is in experiment 'resumed', and the config's name is 'other'"):
        run_comparison(parse_comparison({**CONFIG, "name": "other"}, None, host), tracker, resume=parent.info.run_id)
    with pytest.raises(ScorelabError, match=f"comparison {parent.info.run_id} \\('resumed'\\) finished; nothing "
                                            r"to resume \(run it without --resume for a new one\)$"):
        run_comparison(parse_comparison(CONFIG, None, host), tracker, resume="resumed")
    with pytest.raises(ScorelabError, match="no comparison to resume: 'nowhere' is neither a comparison's parent run "
                                            f"id nor an experiment with one \\(tracking URI {tracking_uri}\\)"):
        run_comparison(parse_comparison({**CONFIG, "name": "nowhere"}, None, host), tracker, resume="nowhere")
    child = client.search_runs([parent.info.experiment_id], "tags.`scorelab.role` = 'evaluation'")[0].info.run_id
    with pytest.raises(ScorelabError, match=f"run {child} is a child run of comparison {parent.info.run_id}; pass "
                                            "that"):
        run_comparison(parse_comparison(CONFIG, None, host), tracker, resume=child)

    # A later comparison finished, an earlier one killed: the refusal names the one to resume.
    _killed(host, tracking_uri, monkeypatch, 1)
    (killed,) = client.search_runs([parent.info.experiment_id], "tags.`scorelab.role` = 'comparison' and "
                                   "attributes.status = 'KILLED'")
    later = run_comparison(parse_comparison(CONFIG, None, host), tracker).parent_run_id
    with pytest.raises(ScorelabError, match=f"comparison {later} \\('resumed'\\) finished; nothing to resume .*; an "
                                            f"earlier one did not finish: {killed.info.run_id} \\(KILLED\\), --resume "
                                            f"{killed.info.run_id} finishes it"):
        run_comparison(parse_comparison(CONFIG, None, host), tracker, resume="resumed")


def test_the_cli_resumes_the_configs_latest_comparison(host, tmp_path, monkeypatch, capsys):
    from scorelab.cli import main

    config = tmp_path / "resumed.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with monkeypatch.context() as patched:
        interrupted_child(patched, KILLED_AT)  # langevin's evaluation on its second seed
        assert main(["compare", str(config), "--quiet", "--tracking-uri", uri]) == 130
    assert "is KILLED; the same command with --resume finishes it" in capsys.readouterr().err
    # Its report (--partial) tallies the children that ended; the one killed is listed, not counted as failed.
    report = ["report", "resumed", "--partial", "--tracking-uri", uri, "--out", str(tmp_path / "r")]
    assert main(report) == 0
    printed = capsys.readouterr().out
    assert "INCOMPLETE comparison (--partial)" in printed and "tables and plots from the children that ended" in printed
    (row,) = [line.split() for line in printed.splitlines() if line.startswith("langevin ")]
    assert row[2] == "1/1"  # ok: of the one evaluation run that ended (not 1/2, the killed one as failed)
    # `--resume CONFIG`: the flag takes the config for its RUN_ID; it is read as the config.
    assert main(["compare", "--resume", str(config), "--quiet", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    total = 2 * 2 + 2 * 2  # two settings tuned on two seeds, then two samplers on two seeds
    assert f"resumed: {KILLED_AT - 1} children kept as they ended, {total - KILLED_AT + 1} run now" in out
    client = MlflowClient(uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id],
                                   "tags.`scorelab.role` = 'comparison'")
    assert parent.info.status == "FINISHED" and f"scorelab report {parent.info.run_id} --tracking-uri {uri}" in out
    assert main(["compare", "--quiet", "--tracking-uri", uri]) == 2
    assert "a comparison config is required" in capsys.readouterr().err
