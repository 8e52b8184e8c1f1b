"""The comparison report, from run records: the same files whether they go to MLflow (at the end
of a comparison) or to a folder (``scorelab report``, rebuilt from MLflow alone)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .analysis import RunRecord, Study, analyse, in_plan_order, select_best, swept, tuning_table, weight_sensitivity
from .errors import ScorelabError
from .oracle import CostWeights
from .plots import quality_vs_cost_figure, speedup_figure
from .summary import markdown, runs_csv


def skipped_samplers(records: list[RunRecord], study: Study) -> list[str]:
    """Samplers left out of the evaluation: every setting diverged or failed on a tuning seed."""
    return sorted(s for s, label in select_best([r for r in records if r.role == "tuning"], study).items()
                  if label is None)


def report_files(records: list[RunRecord], study: Study,
                 weights: CostWeights | None = None) -> tuple[list, dict[str, Any]]:
    """(headline rows, {artifact path: text or matplotlib figure}). With ``weights``, the summary
    shows how each speedup moves when they are halved and doubled."""
    tuning = [r for r in records if r.role == "tuning"]
    evaluation = [r for r in records if r.role == "evaluation"]
    rows = analyse(evaluation, study)
    sensitivity = weight_sensitivity(records, study, weights) if weights is not None else None
    files: dict[str, Any] = {
        "summary.md": markdown(rows, study, tuning_table(tuning, select_best(tuning, study), study), sensitivity,
                               skipped_samplers(records, study)),
        "runs.csv": runs_csv(records, study),
    }
    for metric in study.metrics:
        files[f"plots/{metric}_vs_cost.png"] = quality_vs_cost_figure(evaluation, metric, study)
    if study.baseline and any(not math.isnan(r.speedup_cost[0]) for r in rows if r.sampler != study.baseline):
        files["plots/speedup.png"] = speedup_figure(rows, study)
    return rows, files


def headline_metrics(rows) -> dict[str, float]:
    """Per-sampler figures logged on the parent run, so the MLflow UI can chart and compare them."""
    out = {}
    for row in rows:
        out[f"reached.{row.sampler}"] = row.reached / row.runs
        if math.isfinite(row.cost_to_quality[0]):
            out[f"cost_to_quality.{row.sampler}"] = row.cost_to_quality[0]
        if not math.isnan(row.speedup_cost[0]):
            out[f"speedup.{row.sampler}"] = row.speedup_cost[0]
    return out


class IncompleteComparison(ScorelabError):
    """A comparison that did not finish: its speedups would rest on the runs that happened to end."""

    def __init__(self, parent_id: str, problems: list[str]):
        self.parent_id, self.problems = parent_id, problems
        super().__init__(f"comparison {parent_id} is incomplete: " + "; ".join(problems) + ". Finish it with "
                         "scorelab compare CONFIG --resume, or pass --partial to report what finished (marked "
                         "incomplete)")


def load_records(client, ref: str, *, partial: bool = False,
                 finished: bool = False) -> tuple[Any, Study, list[RunRecord], CostWeights]:
    """The parent run named by ``ref`` (a parent run id, or an experiment name: its latest
    comparison, or with ``finished`` its latest finished one), its study settings and floors, every
    child run as a RunRecord, and the cost weights it ran with. A comparison that did not finish
    raises IncompleteComparison unless ``partial``."""
    parent = find_parent(client, ref, finished)
    if parent is None:
        raise ScorelabError(f"no comparison found for '{ref}': give a parent run id or an experiment name")
    config = comparison_config(client, parent)
    metrics = [m["name"] for m in config["metrics"]]
    floors = {k.removeprefix("floor."): v for k, v in parent.data.metrics.items() if k.startswith("floor.")}
    study = Study(metrics, config["primary_metric"], config["quality_multiple"], config["baseline"], floors,
                  config["budget"], config.get("cost_resolution", 0.0))

    records = []
    current = [run for run in children(client, parent) if SUPERSEDED_TAG not in run.data.tags]
    for run in sorted(current, key=lambda r: int(r.data.tags.get("scorelab.order", 0))):
        tags, m = run.data.tags, run.data.metrics
        record = RunRecord(
            label=tags["scorelab.setting"], sampler=tags["scorelab.sampler"], seed=int(tags["scorelab.seed"]),
            role=tags["scorelab.role"], status=run.info.status, run_id=run.info.run_id, cost=m.get("cost", 0.0),
            diverged_at=m.get("diverged_at_cost"), ess=m.get("ess_per_1k_cost", math.nan),
            budget_points=tags.get("scorelab.curve") == "budgets")
        for metric in metrics:
            record.curves[metric] = _history(client, run.info.run_id, metric)
        record.wall = _history(client, run.info.run_id, "wall_time_s")
        calls = [dict(_history(client, run.info.run_id, f"calls.{k}")) for k in ("nfe", "vjp", "jvp", "curvature")]
        record.counts = {step: tuple(int(c[step]) for c in calls) for step in calls[0] if all(step in c for c in calls)}
        records.append(record)
    records = in_plan_order(records, [s["label"] for s in config["samplers"]], config.get("tuning_seeds", []),
                            config["seeds"])
    problems = incomplete(parent, config, records, study)
    if problems and not partial:
        raise IncompleteComparison(parent.info.run_id, problems)
    return parent, study, records, CostWeights(**config["cost_weights"])


#: The tag of a child that never ended and that a resume of its comparison ran again (:mod:`scorelab.resume`):
#: it stays in the store, with what it logged, and reports read past it.
SUPERSEDED_TAG = "scorelab.superseded"


def children(client, parent) -> list:
    """Every child run of the comparison ``parent``, superseded ones too."""
    return client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                              max_results=50000)


def comparison_config(client, parent) -> dict:
    """The resolved config a comparison logged on its parent run."""
    return yaml.safe_load(Path(client.download_artifacts(parent.info.run_id, "config.yaml")).read_text())


def incomplete(parent, config: dict, records: list[RunRecord], study: Study) -> list[str]:
    """What a comparison whose parent did not finish lacks: children that never ended, and tuning and
    evaluation runs never run (a sampler every setting of which failed in tuning is skipped, not
    missing). Empty for a finished comparison."""
    if parent.info.status == "FINISHED":
        return []
    problems = [f"the parent run is {parent.info.status}"]
    unfinished = [f"{r.label} seed {r.seed} ({r.role}, {r.status})" for r in records
                  if r.status not in ("FINISHED", "FAILED")]
    if unfinished:
        problems.append("unfinished: " + ", ".join(unfinished))
    names = [s["name"] for s in config["samplers"]]
    ran_tuning, tuned = {(r.label, r.seed) for r in records if r.role == "tuning"}, swept(names)
    missing = [f"{s['label']} tuning seed {seed}" for s in config["samplers"] if s["name"] in tuned
               for seed in config.get("tuning_seeds", []) if (s["label"], seed) not in ran_tuning]
    ran = {(r.sampler, r.seed) for r in records if r.role == "evaluation"}
    skipped = set(skipped_samplers(records, study))
    missing += [f"{name} seed {seed}" for name in dict.fromkeys(names) if name not in skipped
                for seed in config["seeds"] if (name, seed) not in ran]
    if missing:
        problems.append("never run: " + ", ".join(missing))
    return problems


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    points = sorted(client.get_metric_history(run_id, key), key=lambda p: (p.step, p.timestamp))
    return [(p.step, p.value) for p in points]


def find_parent(client, ref: str, finished: bool = False):
    """The comparison's parent run: ``ref`` itself if it is one, else the latest comparison of the
    experiment named ``ref`` (with ``finished``, its latest finished one, where there is one); None
    if there is none."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(ref)
        if run.data.tags.get("scorelab.role") == "comparison":
            return run
    except MlflowException:
        pass
    experiment = client.get_experiment_by_name(ref)
    if experiment is None:
        return None
    query = "tags.`scorelab.role` = 'comparison'"
    order = ["attributes.start_time DESC"]
    done = client.search_runs([experiment.experiment_id], query + " and attributes.status = 'FINISHED'",
                              order_by=order, max_results=1) if finished else []
    runs = done or client.search_runs([experiment.experiment_id], query, order_by=order, max_results=1)
    return runs[0] if runs else None


def write_report(folder: Path, files: dict[str, Any]) -> Path:
    """Write the report's files; ``summary.md`` becomes ``report.md``, with the plots linked below it."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    for name, content in files.items():
        path = folder / ("report.md" if name == "summary.md" else name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            content.savefig(path)
            plots.append(name)
            import matplotlib.pyplot as plt

            plt.close(content)
    report = folder / "report.md"
    report.write_text(report.read_text() + "\n## Plots\n\n" + "\n".join(f"![{p}]({p})" for p in plots) + "\n")
    return report
