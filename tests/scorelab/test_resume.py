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
    with monkeypatch.context() as patched:
        interrupted_child(patched, KILLED_AT)
        with pytest.raises(KeyboardInterrupt):
            run_comparison(parse_comparison(CONFIG, None, host), Tracker(uri))
    client = MlflowClient(uri)
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
    with monkeypatch.context() as patched:
        interrupted_child(patched, KILLED_AT)
        with pytest.raises(KeyboardInterrupt):
            run_comparison(parse_comparison(CONFIG, None, host), Tracker(tracking_uri))
    client = MlflowClient(tracking_uri)
    (evaluated,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id],
                                      "attributes.status = 'FINISHED' and tags.`scorelab.role` = 'evaluation'")
    chosen = evaluated.data.tags["scorelab.setting"]
    client.log_metric(evaluated.info.run_id, "diverged_at_cost", 1.0)

    resumed = run_comparison(parse_comparison(CONFIG, None, host), Tracker(tracking_uri), resume="resumed")
    tuned = select_best([r for r in resumed.runs if r.role == "tuning"], resumed.study)["langevin"]
    assert tuned == chosen
    assert {r.label for r in resumed.runs if r.role == "evaluation" and r.sampler == "langevin"} == {chosen}


def test_only_the_same_unfinished_comparison_is_resumed(host, tracking_uri, monkeypatch):
    with monkeypatch.context() as patched:
        interrupted_child(patched, 1)
        with pytest.raises(KeyboardInterrupt):
            run_comparison(parse_comparison(CONFIG, "resumed.yaml", host), Tracker(tracking_uri))
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
                                            "to resume"):
        run_comparison(parse_comparison(CONFIG, None, host), tracker, resume="resumed")
    with pytest.raises(ScorelabError, match="no comparison to resume: 'nowhere'"):
        run_comparison(parse_comparison({**CONFIG, "name": "nowhere"}, None, host), tracker, resume="nowhere")


def test_the_cli_resumes_the_configs_latest_comparison(host, tmp_path, monkeypatch, capsys):
    from scorelab.cli import main

    config = tmp_path / "resumed.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with monkeypatch.context() as patched:
        interrupted_child(patched, 2)
        assert main(["compare", str(config), "--quiet", "--tracking-uri", uri]) == 130
    assert "is KILLED; the same command with --resume finishes it" in capsys.readouterr().err
    assert main(["compare", str(config), "--quiet", "--tracking-uri", uri, "--resume"]) == 0
    client = MlflowClient(uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id],
                                   "tags.`scorelab.role` = 'comparison'")
    assert parent.info.status == "FINISHED" and parent.info.run_id in capsys.readouterr().out
