"""A comparison: every sampler setting x seed, same initial chains, same budget, tracked in MLflow.

One parent run per comparison (resolved config, plugin list, summary table) and one child run per
(sampler setting, seed) with params, quality-vs-cost curves (``step`` = cost), counts, wall time and
a samples plot. A diverged chain is recorded as such and the comparison goes on; a sampler that
raises is recorded as FAILED and the comparison goes on; Ctrl-C marks the open runs KILLED.
"""

from __future__ import annotations

import dataclasses
import math
import platform as _platform
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from .chain import Checkpoint, run_chain
from .config import Comparison, SamplerSetting
from .contracts import hyperparameters
from .cost import measure_cost_weights
from .device import device_name, resolve_device
from .oracle import CostWeights, ScoreOracle
from .plots import samples_figure
from .schedules import log_spaced_checkpoints
from .errors import ConfigError
from .sources import ExactScore, model_source
from .summary import summary_csv, summary_markdown
from .tracking import Tracker


@dataclass
class RunResult:
    label: str
    sampler: str
    seed: int
    run_id: str
    status: str  # FINISHED, FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    cost: float = 0.0
    steps: int = 0
    wall_time: float = 0.0
    diverged_at: float | None = None
    error: str | None = None


@dataclass
class ComparisonResult:
    experiment_id: str
    parent_run_id: str
    runs: list[RunResult]
    device: str
    cost_weights: CostWeights
    tracking_seconds: float
    total_seconds: float


def initial_chains(comp: Comparison, seed: int, device, dtype) -> torch.Tensor:
    """The chains every sampler starts from for this seed (drawn on the CPU: identical on any device)."""
    g = torch.Generator().manual_seed(seed)
    shape = (comp.chains, *comp.target.event_shape)
    init = comp.init
    if init.distribution == "gaussian":
        x = init.center + init.scale * torch.randn(shape, generator=g, dtype=torch.float64)
    else:
        x = init.center + init.scale * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1)
    return x.to(device=device, dtype=dtype)


def reference_samples(comp: Comparison, device) -> torch.Tensor:
    g = torch.Generator(device).manual_seed(comp.reference_seed)
    return comp.target.sample(comp.chains, g)


def run_comparison(comp: Comparison, tracker: Tracker, *, plugins: list | None = None,
                   progress: Any = None) -> ComparisonResult:
    started = time.perf_counter()
    device = resolve_device(comp.device)
    dtype = getattr(torch, comp.dtype)
    target = comp.target.to(device, dtype)
    source = make_source(comp, target, device, dtype, tracker.uri)
    reference = reference_samples(comp, device)
    if comp.cost_weights is not None:
        weights = CostWeights(**dataclasses.asdict(comp.cost_weights))
    else:
        weights = measure_cost_weights(source, initial_chains(comp, comp.seeds[0], device, dtype))
    checkpoints = log_spaced_checkpoints(comp.budget, comp.checkpoints)

    experiment_id = tracker.experiment(comp.name)
    common_tags = {"scorelab.target": target.name, "scorelab.device": device_name(device)}
    parent = tracker.start_run(
        experiment_id, f"compare {comp.name}", tags={**common_tags, "scorelab.role": "comparison"},
        params={"target": target.name, "budget": comp.budget, "chains": comp.chains, "seeds": comp.seeds,
                "device": device_name(device), "dtype": comp.dtype,
                **{f"cost_weight.{k}": round(v, 4) for k, v in dataclasses.asdict(weights).items()}},
    )
    tracker.log_dict(parent, resolved_config(comp, weights, device), "config.yaml")
    if plugins is not None:
        tracker.log_dict(parent, plugins, "plugins.json")
    tracker.log_dict(parent, environment(device), "environment.json")

    runs: list[RunResult] = []
    child = None
    try:
        for setting in comp.samplers:
            for seed in comp.seeds:
                name = f"{setting.label} seed={seed}"
                child = tracker.start_run(
                    experiment_id, name, parent=parent,
                    tags={**common_tags, "scorelab.sampler": setting.name, "scorelab.setting": setting.label,
                          "scorelab.seed": seed, "scorelab.role": "evaluation"},
                    params={"sampler": setting.name, "seed": seed, "budget": comp.budget,
                            "chains": comp.chains, **hyperparameters(setting.make())},
                )
                result = _run_one(comp, setting, seed, child, tracker, source, weights, reference,
                                  checkpoints, device, dtype)
                tracker.end(child, result.status)
                child = None
                runs.append(result)
                if progress is not None:
                    progress.update(1)
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        for run_id in filter(None, (child, parent)):
            tracker.set_tags(run_id, {"scorelab.status": status.lower()})
            tracker.end(run_id, status)
        raise

    tracker.log_text(parent, summary_markdown(runs, list(comp.metrics)), "summary.md")
    tracker.log_text(parent, summary_csv(runs, list(comp.metrics)), "summary.csv")
    tracker.log_metrics(parent, {"tracking_seconds": tracker.seconds,
                                 "total_seconds": time.perf_counter() - started}, step=0)
    tracker.end(parent, "FINISHED")
    return ComparisonResult(experiment_id, parent, runs, device_name(device), weights, tracker.seconds,
                            time.perf_counter() - started)


def _run_one(comp, setting: SamplerSetting, seed, run_id, tracker: Tracker, source, weights, reference,
             checkpoints, device, dtype) -> RunResult:
    result = RunResult(setting.label, setting.name, seed, run_id, "FINISHED")
    generator = torch.Generator(device).manual_seed(seed)
    oracle = ScoreOracle(source, weights)
    x0 = initial_chains(comp, seed, device, dtype)

    def on_checkpoint(cp: Checkpoint) -> None:
        values = {name: metric(cp.state.x, reference, comp.target) for name, metric in comp.metrics.items()}
        result.metrics = values
        extra = {f"info.{k}": v for k, v in cp.info.items()}
        tracker.log_metrics(run_id, {**values, **extra, "wall_time_s": cp.wall_time}, step=round(cp.cost))

    try:
        chain = run_chain(setting.make(), oracle, x0, comp.budget, generator, checkpoints, on_checkpoint)
    except Exception as exc:  # a broken sampler fails its own run, not the comparison
        result.status, result.error = "FAILED", f"{type(exc).__name__}: {exc}"
        tracker.log_text(run_id, traceback.format_exc(), "error.txt")
        tracker.set_tags(run_id, {"scorelab.status": "failed", "scorelab.error": result.error[:5000]})
        return result

    result.cost, result.steps, result.wall_time = chain.cost, chain.steps, chain.wall_time
    result.diverged_at = chain.diverged_at
    counts = dataclasses.asdict(chain.counts)
    final = {"cost": chain.cost, "steps": chain.steps, "wall_time_s": chain.wall_time,
             "diverged": float(chain.diverged_at is not None), **{f"calls.{k}": v for k, v in counts.items()}}
    if chain.diverged_at is not None:
        final["diverged_at_cost"] = chain.diverged_at
        result.metrics = {k: math.nan for k in comp.metrics}
    tracker.log_metrics(run_id, final, step=round(chain.cost))
    tracker.set_tags(run_id, {"scorelab.status": "diverged" if chain.diverged_at is not None else "ok"})
    if chain.diverged_at is None:
        tracker.log_figure(run_id, samples_figure(chain.state.x, reference, f"{setting.label} seed={seed}"),
                           "samples.png")
    return result


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
        raise ConfigError(f"the model at {comp.score} was trained on shape {shape}; target '{target.name}' has "
                          f"shape {tuple(target.event_shape)}", file=comp.file, key="score")
    for setting in comp.samplers:
        missing = [r for r in getattr(setting.cls, "requires", ()) if r not in source.provides]
        if missing:
            raise ConfigError(f"sampler {setting.name} requires {', '.join(missing)}, which the model at {comp.score} "
                              f"does not provide (it provides: {', '.join(sorted(source.provides)) or 'nothing'})",
                              file=comp.file, key="score")
    return source


def resolved_config(comp: Comparison, weights: CostWeights, device) -> dict:
    """The config as it ran: every default filled in, sweeps expanded, weights as used."""
    return {
        **{k: v for k, v in dataclasses.asdict(comp.spec).items() if k not in ("target", "samplers", "metrics")},
        "device": str(device),
        "target": {"name": comp.target.name, **comp.target.describe()},
        "init": dataclasses.asdict(comp.init),
        "metrics": [{"name": n, **hyperparameters(m)} for n, m in comp.metrics.items()],
        "samplers": [{"name": s.name, "label": s.label, **hyperparameters(s.make())} for s in comp.samplers],
        "cost_weights": dataclasses.asdict(weights),
        "source_file": comp.file,
    }


def environment(device) -> dict:
    import scorelab

    return {"scorelab": scorelab.__version__, "torch": torch.__version__, "python": _platform.python_version(),
            "device": device_name(device), "platform": _platform.platform()}


