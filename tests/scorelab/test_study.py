"""A study end to end: its comparisons run, the document is built from MLflow, and rebuilt from it alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from scorelab.compare import run_comparison
from scorelab.config import parse_comparison
from scorelab.errors import ConfigError
from scorelab.study import QuickSpec, load_study, quicken, write_document
from scorelab.tracking import Tracker

GAUSSIAN = {
    "name": "unit-gaussian",
    "target": {"name": "gaussian", "dim": 4, "condition_number": 20.0},
    "budget": 400,
    "chains": 256,
    "seeds": [0, 1],
    "checkpoints": 6,
    "init": {"distribution": "gaussian", "center": 1.0, "scale": 2.0},
    "cost_weights": {"vjp": 3, "jvp": 4},
    "metrics": ["max_moment_error"],
    "samplers": [
        {"name": "langevin", "step_size": 0.01},
        {"name": "hessian_diag_langevin", "curvature": "exact", "step_size": 0.2, "refresh_every": 20},
        {"name": "hessian_diag_langevin", "as": "hessian_diag_hutchinson", "probes": 2, "step_size": 0.2,
         "refresh_every": 20},
    ],
}

STUDY = """\
title: A unit study
document: study.md
introduction: Two rows of one plugin, and a goal.
comparisons:
  - config: gaussian.yaml
    title: An axis-aligned Gaussian
    why: A diagonal preconditioner undoes an axis-aligned scale exactly.
    goals:
      - {sampler: hessian_diag_langevin, speedup: 2, what: exact diagonal}
      - {sampler: hessian_diag_hutchinson, speedup: 1000, what: estimated diagonal}
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "study.yaml").write_text(STUDY)
    (tmp_path / "gaussian.yaml").write_text(yaml.safe_dump(GAUSSIAN))
    return tmp_path


def test_document_from_mlflow_with_findings_and_goals(folder, host, tracking_uri):
    plan = load_study(folder, host=host)
    tracker = Tracker(tracking_uri)
    parent = run_comparison(plan.comparisons[0], tracker).parent_run_id
    out, unmeasured = write_document(plan, MlflowClient(tracking_uri), [parent], folder / "doc" / "study.md")
    assert unmeasured == []
    text = out.read_text()
    assert text.startswith("# A unit study") and parent in text
    assert "| hessian_diag_hutchinson |" in text and "| hessian_diag_langevin |" in text
    assert "**What the numbers show.** Quality is max_moment_error ≤" in text
    assert "costs: median over 2 seeds [order-statistic interval, 50.0%]; speedups: [95 % paired" in text
    assert "**Why.** A diagonal preconditioner" in text
    assert "- estimated diagonal: hessian_diag_hutchinson ≥ 1000× langevin: measured" in text
    assert "**undetermined** (neither it nor langevin reached quality" in text  # both censored: no speedup
    assert "**undetermined** (langevin did not reach" in text
    report = folder / "doc" / "study" / "unit-gaussian" / "report.md"
    assert report.is_file() and (report.parent / "plots" / "max_moment_error_vs_cost.png").is_file()
    assert "(study/unit-gaussian/plots/max_moment_error_vs_cost.png)" in text

    # Rebuilt from MLflow alone, by experiment name: the same document, also once a later run of the
    # comparison was killed (the latest finished run is the one measured).
    again, _ = write_document(plan, MlflowClient(tracking_uri), ["unit-gaussian"], out)
    assert again.read_text() == text
    killed = tracker.start_run(tracker.experiment("unit-gaussian"), "compare", tags={"scorelab.role": "comparison"})
    tracker.end(killed, "KILLED")
    again, unmeasured = write_document(plan, MlflowClient(tracking_uri), ["unit-gaussian"], out)
    note = f" A later run, parent `{killed}`, ended KILLED: this is the latest finished one."
    assert unmeasured == [] and again.read_text() == text.replace("report.md).\n", f"report.md).{note}\n")

    # A quick run's document states what was measured against each goal, and no verdict.
    quick = dataclasses.replace(plan, quick=QuickSpec())
    quick_doc, _ = write_document(quick, MlflowClient(tracking_uri), [parent], folder / "quick" / "study.md")
    quick_text = quick_doc.read_text()
    assert "**Goals.** A quick run's figures: no verdict." in quick_text
    goal = "- estimated diagonal: hessian_diag_hutchinson ≥ 1000× langevin: measured "
    line = next(x for x in quick_text.splitlines() if x.startswith(goal[:40]))
    assert line.startswith(goal) and "**" not in line
    assert not any(v in quick_text for v in ("**met**", "**not met**", "**undetermined**"))


def test_quick_shrinks_every_comparison(host):
    config = {**GAUSSIAN, "samplers": [{"name": "langevin", "step_size": [0.01, 0.02]}, *GAUSSIAN["samplers"][2:]]}
    quick = quicken(config, parse_comparison(config, host=host), QuickSpec(budget_scale=0.1, chains=64, seeds=1))
    assert quick["name"] == "unit-gaussian-quick" and quick["budget"] == 40 and quick["chains"] == 64
    assert quick["seeds"] == [0] and quick["samplers"] == [
        {"name": "langevin", "step_size": 0.01},
        {"name": "hessian_diag_langevin", "as": "hessian_diag_hutchinson", "probes": 2, "step_size": 0.2,
         "refresh_every": 20}]


def test_a_goal_for_a_row_that_is_not_compared_is_refused(folder, host):
    text = (folder / "study.yaml").read_text().replace("sampler: hessian_diag_hutchinson", "sampler: ozaki")
    (folder / "study.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_study(folder, host=host)
    assert err.value.key == "comparisons[0].goals[1].sampler" and "hessian_diag_hutchinson" in str(err.value)


def test_the_shipped_study_is_valid(host):
    plan = load_study("configs/study", host=host)
    assert len(plan.entries) == len(plan.comparisons) >= 3
    quick = load_study("configs/study", quick=True, host=host)
    assert all(c.name.endswith("-quick") for c in quick.comparisons)
    assert plan.spec.document == "docs/curvature-study.md"


#: The shipped comparisons the end-to-end test runs: an exact score, and a learned one of each kind
#: (2-D and images), each trained first. The whole quick study (``scorelab study configs/study
#: --quick``) took 169 s on the 2-core CPU CI runs on, most of it the start of its 13 processes: more
#: than a quarter of the suite's time budget. Every shipped comparison is validated by the test above.
RUN_END_TO_END = ["mixture.yaml", "checkerboard_second_order.yaml", "digits_second_order.yaml"]


@pytest.mark.slow
def test_the_quick_study_runs_end_to_end(tmp_path, capsys):
    """The shipped study, shrunk by --quick, through the command line with two comparisons at a time
    (each its own process, on one fresh store): every section written, the chosen comparisons
    measured and their goals given what was measured (no verdict: a quick run), the rest named as not
    measured."""
    from scorelab.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "study.md"
    args = ["study", "configs/study", "--quick", "--quiet", "--tracking-uri", uri, "--out", str(out), "--jobs", "2",
            "--only", *RUN_END_TO_END]
    assert main(args) == 0
    assert capsys.readouterr().out.count("started ") == len(RUN_END_TO_END)
    text = out.read_text()
    plan = load_study("configs/study", quick=True)
    assert "**Quick run**" in text
    for entry, comp in zip(plan.entries, plan.comparisons, strict=True):
        assert f"## {entry.title}" in text
        if Path(comp.file).name in RUN_END_TO_END:
            assert f"Experiment `{comp.name}`" in text
            assert all(f"{g.sampler} ≥ {g.speedup:g}×" in text for g in entry.goals)
    assert text.count("**What the numbers show.**") == len(RUN_END_TO_END)
    assert not any(v in text for v in ("**met**", "**not met**", "**undetermined**"))  # a quick run judges nothing
    assert text.count("**Not measured**: no finished run") == len(plan.entries) - len(RUN_END_TO_END)
    # Rebuilt from MLflow alone: the same document.
    again = tmp_path / "again" / "study.md"
    assert main(["study", "configs/study", "--quick", "--from-mlflow", "--tracking-uri", uri, "--out", str(again)]) == 0
    assert again.read_text() == text


def test_only_names_config_files_of_the_study(folder, host):
    plan = load_study(folder, host=host)
    assert plan.select(["gaussian.yaml"]) == [0]
    with pytest.raises(ConfigError, match="unknown comparison 'gausian.yaml'; did you mean 'gaussian.yaml'?"):
        plan.select(["gausian.yaml"])


def test_one_process_runs_the_chosen_comparisons_and_keeps_the_rest(folder, tracking_uri, capsys):
    """--only with --jobs 1: the chosen comparison runs in this process; the document names its run."""
    from scorelab.cli import main

    second = {**GAUSSIAN, "name": "unit-gaussian-2", "samplers": GAUSSIAN["samplers"][:1]}
    (folder / "second.yaml").write_text(yaml.safe_dump(second))
    (folder / "study.yaml").write_text(STUDY + "  - config: second.yaml\n    title: The same, one row\n")
    out = folder / "study.md"
    argv = ["study", str(folder), "--quiet", "--tracking-uri", tracking_uri, "--out", str(out)]
    assert main([*argv, "--only", "second.yaml"]) == 0  # the first was never run: its section says so
    assert "not measured (no finished run in MLflow): gaussian.yaml" in capsys.readouterr().out
    text = out.read_text()
    assert "**Not measured**: no finished run" in text and "--only gaussian.yaml" in text
    assert "hessian_diag_langevin ≥ 2×: **not measured**" in text
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "started" not in printed and printed.count("parent run ") == 2
    assert main([*argv, "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_resume_takes_finished_comparisons_and_finishes_the_one_killed(folder, tracking_uri, capsys, monkeypatch):
    """A study stopped in its second comparison: ``--resume`` keeps the first as it finished and finishes
    the second in its own parent run."""
    from scorelab.cli import main
    from tests.helpers import interrupted_child

    second = {**GAUSSIAN, "name": "unit-gaussian-2", "samplers": GAUSSIAN["samplers"][:2]}
    (folder / "second.yaml").write_text(yaml.safe_dump(second))
    (folder / "study.yaml").write_text(STUDY + "  - config: second.yaml\n    title: The same, two rows\n")
    argv = ["study", str(folder), "--quiet", "--tracking-uri", tracking_uri, "--out", str(folder / "study.md")]
    with monkeypatch.context() as patched:
        interrupted_child(patched, len(GAUSSIAN["seeds"]) * 3 + 1)  # the second comparison's first child
        assert main(argv) == 130
    client = MlflowClient(tracking_uri)
    (first,) = client.search_runs([client.get_experiment_by_name("unit-gaussian").experiment_id],
                                  "tags.`scorelab.role` = 'comparison'")
    (killed,) = client.search_runs([client.get_experiment_by_name("unit-gaussian-2").experiment_id],
                                   "tags.`scorelab.role` = 'comparison'")
    assert (first.info.status, killed.info.status) == ("FINISHED", "KILLED")
    capsys.readouterr()

    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"unit-gaussian: finished already, parent run {first.info.run_id}" in printed
    assert f"unit-gaussian-2: parent run {killed.info.run_id}" in printed and "not measured" not in printed
    resumed = client.get_run(killed.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["scorelab.resumed_rerun"] == "1"
    # A config changed since its comparison finished is run anew, in a new parent run.
    (folder / "second.yaml").write_text(yaml.safe_dump({**second, "budget": 300}))
    assert main([*argv, "--resume", "--only", "second.yaml"]) == 0
    printed = capsys.readouterr().out
    assert "unit-gaussian-2: its config differs from its latest run's in budget: run anew" in printed
    assert f"parent run {killed.info.run_id}" not in printed
