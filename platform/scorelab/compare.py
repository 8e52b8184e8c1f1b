"""A comparison: tuning, then evaluation, at equal cost from the same chains, tracked in MLflow.

1. Quality floors: each metric between two independent exact sample sets of the chains' size.
2. Tuning: every setting of a swept sampler runs on the tuning seeds; the best per sampler is the
   one that reaches quality (primary metric <= multiple x floor) for the least cost. Tuning runs
   evaluate the primary metric only.
3. Evaluation: each sampler's best setting runs on the evaluation seeds; only these runs enter the
   headline table: reached k/n, the median cost to quality (censored at the budget) with an
   order-statistic interval, and speedups over the baseline paired by seed, with paired bootstrap
   intervals. Each child run is :mod:`scorelab.child`.

MLflow: one parent run (resolved config, plugins, floors, summary, plots) and one child run per
(setting, seed, phase). A diverged chain is recorded as such and the comparison goes on; a sampler
that raises fails its own run; Ctrl-C marks the open runs KILLED with what they had logged.
"""

from __future__ import annotations

import dataclasses
import platform as _platform
import time
from dataclasses import dataclass
from typing import Any

import torch

from .analysis import RunRecord, Study, in_plan_order, select_best, swept
from .child import Setup, initial_chains
from .config import Comparison
from .contracts import hyperparameters, traits
from .cost import measure_cost_weights
from .device import cpu_model, cpu_threads, device_name, resolve_device
from .errors import ConfigError
from .executors import ChildJob, Executor, LocalExecutor
from .floors import quality_floor
from .oracle import CostWeights
from .reporting import headline_metrics, report_files, skipped_samplers
from .resume import Resumed, check_same, reopen, unfinished
from .schedules import log_spaced_checkpoints
from .sources import ExactScore
from .summary import NO_ROWS, findings, headline, skipped_text
from .tracking import Tracker
from .training.export import model_source


@dataclass
class ComparisonResult:
    experiment_id: str
    parent_run_id: str
    runs: list[RunRecord]
    rows: list  # analysis.Row, one per sampler
    study: Study
    device: str
    cost_weights: CostWeights
    tracking_seconds: float
    total_seconds: float
    skipped: list[str]  # samplers not evaluated: every setting diverged or failed on a tuning seed
    resumed: tuple[int, int] | None = None  # for a resumed comparison: children kept, children run now


def run_comparison(comp: Comparison, tracker: Tracker, *, plugins: list | None = None, progress: Any = None,
                   executor: Executor | None = None, resume: str | None = None) -> ComparisonResult:
    """Run ``comp``: its child runs by ``executor`` (default: one after another, in this process). With
    ``resume`` (a parent run id, or the experiment's name for its latest comparison), finish that
    comparison of ``comp`` instead, in its parent run (:mod:`scorelab.resume`)."""
    device = resolve_device(comp.device)
    resumed = unfinished(tracker.client, resume, comp.name, tracker.uri) if resume is not None else None
    with cpu_threads(comp.cpu_threads if device.type == "cpu" else 0):
        return _run_comparison(comp, tracker, device, plugins, progress, executor or LocalExecutor(), resumed)


def materials(comp: Comparison, device, tracking_uri: str | None) -> tuple:
    """What every child samples against: (dtype, target, score source, reference samples). Seeded by the
    config alone, so a worker on another machine builds the same ones as the driver."""
    dtype = getattr(torch, comp.dtype)
    target = comp.target.to(device, dtype)
    source = make_source(comp, target, device, dtype, tracking_uri)
    reference = target.sample(comp.chains, torch.Generator(device).manual_seed(comp.reference_seed))
    return dtype, target, source, reference


def _run_comparison(comp: Comparison, tracker: Tracker, device, plugins, progress,
                    executor: Executor, resumed: Resumed | None) -> ComparisonResult:
    started = time.perf_counter()
    executor.check(tracker.uri)
    if resumed is not None:  # the same comparison, before any work
        check_same(resumed, config_now(comp, resumed.weights, device), comp.file)
    dtype, target, source, reference = materials(comp, device, tracker.uri)
    if resumed is not None:  # what the comparison measured before it was stopped
        weights, weight_params, floors = resumed.weights, {}, resumed.floors
    else:
        weights, weight_params = _cost_weights(comp, target, source, device, dtype)
        # Floors for discrepancies only: "under k x floor" means nothing for a likelihood, which collapse lowers.
        floors = {name: quality_floor(metric, target, comp.chains, comp.reference_seed + 1)
                  for name, metric in comp.metrics.items() if traits("metric", metric).discrepancy}
    study = Study(list(comp.metrics), comp.primary, comp.quality_multiple, comp.baseline, floors, comp.budget,
                  comp.cost_resolution)

    if resumed is None:
        experiment_id, parent, tags = _open_parent(comp, tracker, target, device, weights, weight_params, floors,
                                                   plugins)
    else:
        reopen(tracker, resumed, environment(device))
        experiment_id, parent, tags = resumed.experiment_id, resumed.parent_id, _parent_tags(comp, device)
    monitor = _system_metrics(parent, tracker) if device.type == "cuda" else None
    setup = Setup(comp, tracker, experiment_id, parent, source, target, reference, weights,
                  log_spaced_checkpoints(comp.budget, comp.checkpoints), device, dtype, tags, study,
                  order=resumed.order if resumed is not None else 0)

    records: list[RunRecord] = list(resumed.kept) if resumed is not None else []
    if progress is not None and records:
        progress.update(len(records))
    try:
        tuning, evaluation = plan(comp)
        records += executor.run(setup, _not_done(comp, tuning, records), progress)
        best = select_best([r for r in records if r.role == "tuning"], study)  # a resume keeps evaluation runs too
        records += executor.run(setup, _not_done(comp, evaluation(best), records), progress)
        records = in_plan_order(records, [s.label for s in comp.samplers], comp.tuning_seeds, comp.seeds)
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        exc.add_note(f"comparison {parent} is {status}; the same command with --resume finishes it")
        # A child the signal caught between its run's creation and its own handler is still open: end it too.
        for run_id in sorted(tracker.open - {parent}):
            tracker.set_tags(run_id, {"scorelab.status": "killed"})
            tracker.end(run_id, "KILLED")
        tracker.set_tags(parent, {"scorelab.status": status.lower()})
        tracker.end(parent, status)
        raise
    finally:
        if monitor is not None:
            monitor.finish()

    rows, skipped = _close_parent(tracker, parent, records, study, weights, started)
    return ComparisonResult(experiment_id, parent, records, rows, study, device_name(device), weights,
                            tracker.seconds, time.perf_counter() - started, skipped,
                            None if resumed is None else (len(resumed.kept), len(records) - len(resumed.kept)))



def _cost_weights(comp: Comparison, target, source, device, dtype) -> tuple[CostWeights, dict]:
    """The config's cost weights, or weights measured on the score source (with their spread as params)."""
    if comp.cost_weights is not None:
        return CostWeights(**dataclasses.asdict(comp.cost_weights)), {}
    # Timed on one block of chains: the batch every step runs on (all of them, unless they run in blocks).
    x = initial_chains(comp, target, comp.seeds[0], device, dtype, host=comp.blocked)
    measured = measure_cost_weights(source, x[:comp.block].to(device))
    return measured.weights, measured.as_params()


def plan(comp: Comparison) -> tuple[list[ChildJob], Any]:
    """The comparison as independent child jobs: the tuning jobs (every setting of a swept sampler on the
    tuning seeds), and a function from tuning's choice (sampler -> best label, from ``select_best``) to
    the evaluation jobs (each sampler's best setting on the evaluation seeds)."""
    by_sampler: dict[str, list[int]] = {}
    for i, s in enumerate(comp.samplers):
        by_sampler.setdefault(s.name, []).append(i)
    tuned = swept([s.name for s in comp.samplers])
    tuning = [ChildJob(i, seed, "tuning") for i, s in enumerate(comp.samplers) if s.name in tuned
              for seed in comp.tuning_seeds]

    def evaluation(best: dict[str, str | None]) -> list[ChildJob]:
        best = {**best, **{name: comp.samplers[ii[0]].label for name, ii in by_sampler.items() if len(ii) == 1}}
        # best[name] is None where every setting diverged or failed in tuning: that sampler is not evaluated.
        return [ChildJob(i, seed, "evaluation") for i, s in enumerate(comp.samplers) if best.get(s.name) == s.label
                for seed in comp.seeds]

    return tuning, evaluation


def _not_done(comp: Comparison, jobs: list[ChildJob], records: list[RunRecord]) -> list[ChildJob]:
    """``jobs`` less those a record already holds (a resumed comparison's children that ended)."""
    done = {(r.label, r.seed, r.role) for r in records}
    return [j for j in jobs if (comp.samplers[j.setting].label, j.seed, j.role) not in done]


def _close_parent(tracker: Tracker, parent: str, records: list[RunRecord], study: Study, weights: CostWeights,
                  started: float) -> tuple[list, list[str]]:
    """The parent's answer (its description), report files and headline metrics; the parent ends FINISHED.
    Returns the headline rows and the samplers left out of them."""
    rows, files = report_files(records, study, weights)
    skipped = skipped_samplers(records, study)
    tracker.set_tags(parent, {NOTE_TAG: answer(rows, study, [r for r in records if r.role == "evaluation"], skipped),
                              "scorelab.status": "ok"})
    for name, content in files.items():
        if isinstance(content, str):
            tracker.log_text(parent, content, name)
        else:
            tracker.log_figure(parent, content, name)
    tracker.log_metrics(parent, {**headline_metrics(rows), "tracking_seconds": tracker.seconds,
                                 "total_seconds": time.perf_counter() - started}, step=0)
    tracker.end(parent, "FINISHED")
    return rows, skipped


#: The run's description in the MLflow UI, rendered as Markdown at the top of the run's page.
NOTE_TAG = "mlflow.note.content"


def _parent_tags(comp: Comparison, device) -> dict:
    """The tags the parent and every child carry."""
    return {"scorelab.target": comp.target_name, "scorelab.device": device_name(device)}


def answer(rows, study: Study, evaluation: list[RunRecord], skipped: list[str] = ()) -> str:
    """The parent run's description: the comparison's answer first, then its table and the samplers
    left out of it."""
    header, body = headline(rows, study)
    table = "\n".join("| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *body]) if rows \
        else NO_ROWS
    return (f"**{findings(rows, study, evaluation)}**\n\n{table}\n{skipped_text(skipped)}\nThe full report, with "
            "the legend and plots: `summary.md` and `plots/` in this run's artifacts.")


def _open_parent(comp: Comparison, tracker: Tracker, target, device, weights: CostWeights, weight_params: dict,
                 floors: dict, plugins) -> tuple[str, str, dict]:
    """The comparison's parent run, with what cannot be recomputed (floors, weights) written at once."""
    experiment_id = tracker.experiment(comp.name)
    tags = _parent_tags(comp, device)
    parent = tracker.start_run(
        experiment_id, f"compare {comp.name}", tags={**tags, "scorelab.role": "comparison"},
        params={"target": comp.target_name, "score": comp.score, "budget": comp.budget, "chains": comp.chains,
                "seeds": comp.seeds, "tuning_seeds": comp.tuning_seeds, "primary_metric": comp.primary,
                "baseline": comp.baseline,
                "quality_multiple": comp.quality_multiple, "cost_resolution": comp.cost_resolution,
                "device": device_name(device), "dtype": comp.dtype, "compile": comp.compile, "rng": comp.rng,
                **{f"cost_weight.{k}": round(v, 4) for k, v in dataclasses.asdict(weights).items()},
                **{k: round(v, 4) for k, v in weight_params.items() if k.count(".") > 1}},  # the measured spread
    )
    tracker.log_metrics(parent, {f"floor.{k}": v for k, v in floors.items()}, step=0)
    tracker.flush(parent)  # the floors cost work to measure: written at once
    tracker.log_dict(parent, resolved_config(comp, weights, device), "config.yaml")
    if plugins is not None:
        tracker.log_dict(parent, plugins, "plugins.json")
    tracker.log_dict(parent, environment(device), "environment.json")
    return experiment_id, parent, tags

def _system_metrics(run_id: str, tracker: Tracker):
    """MLflow's GPU/CPU utilisation and memory monitor for the comparison's parent run, if installed."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=5, samples_before_logging=1,
                                       tracking_uri=tracker.uri)
        monitor.start()
        return monitor
    except ImportError as exc:  # psutil / nvidia-ml-py missing: say so where the user looks
        tracker.set_tags(run_id, {"scorelab.system_metrics": f"off ({exc}); pip install 'scorelab[gpu]'"})
        return None


def make_source(comp: Comparison, target, device, dtype, tracking_uri: str | None = None):
    """The comparison's score source: the target's exact score, or the trained model at the MLflow URI
    in ``score``, checked against the target's shape and what the samplers require."""
    if comp.score == "exact":
        return ExactScore(target)
    try:
        source = model_source(comp.score, tracking_uri=tracking_uri, device=device, dtype=dtype)
    except (LookupError, ValueError) as exc:
        raise ConfigError(str(exc), file=comp.file, key="score") from None
    shape = tuple(source.network.event_shape)
    if shape != tuple(target.event_shape):
        raise ConfigError(f"the model at {comp.score} was trained on shape {shape}; target '{comp.target_name}' has "
                          f"shape {tuple(target.event_shape)}", file=comp.file, key="score")
    for setting in comp.samplers:
        missing = [r for r in traits("sampler", setting.make()).requires if r not in source.provides]
        if missing:
            raise ConfigError(f"sampler {setting.name} requires {', '.join(missing)}, which the model at {comp.score} "
                              f"does not provide (it provides: {', '.join(sorted(source.provides)) or 'nothing'})",
                              file=comp.file, key="score")
    return source


def resolved_config(comp: Comparison, weights: CostWeights, device) -> dict:
    """The config as it ran: every default filled in, sweeps expanded, weights as used."""
    skip = ("target", "samplers", "metrics", "tuning_seeds", "primary_metric", "baseline")
    return {
        **{k: v for k, v in dataclasses.asdict(comp.spec).items() if k not in skip},
        "device": str(device),
        "tuning_seeds": comp.tuning_seeds,
        "primary_metric": comp.primary,
        "baseline": comp.baseline,
        "target": {"name": comp.target_name, **comp.target.describe()},
        "init": dataclasses.asdict(comp.init),
        "metrics": [{"name": n, **hyperparameters(m)} for n, m in comp.metrics.items()],
        "samplers": [{"name": s.name, "plugin": s.plugin, "label": s.label, **hyperparameters(s.make())}
                     for s in comp.samplers],
        "cost_weights": dataclasses.asdict(weights),
        "source_file": comp.file,
    }


def config_now(comp: Comparison, logged: CostWeights, device) -> dict:
    """``comp`` resolved as it would run now, to compare with a config a comparison logged: with its own
    cost weights where it gives them, else with the ``logged`` ones that comparison measured."""
    given = CostWeights(**dataclasses.asdict(comp.cost_weights)) if comp.cost_weights is not None else None
    return resolved_config(comp, given or logged, device)


def environment(device) -> dict:
    import scorelab

    return {"scorelab": scorelab.__version__, "torch": torch.__version__, "python": _platform.python_version(),
            "device": device_name(device), "cpu": cpu_model(), "platform": _platform.platform()}
