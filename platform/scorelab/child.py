"""One child run of a comparison: a sampler setting on one seed, sampled, measured and logged.

At each checkpoint the metrics are evaluated on the chains and logged with ``step = cost`` together
with the call counts (so the cost can be re-priced later). The crossing of the primary metric is
then resolved to the step (:mod:`scorelab.crossing`): by replaying the segment before it, or, for
samplers whose schedule depends on the budget, by a ladder of budgets. Samplers that step until the
budget runs out also trace a few projections of some chains for the bulk effective sample size.

Chains too many for the device together (``comp.blocked``) run in blocks
(:func:`scorelab.chain.run_blocks`): such a run has no one state to replay or trace, so its crossing
is resolved at checkpoints and it has no effective sample size.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from .analysis import RunRecord, Study
from .chain import ChainResult, Checkpoint, run_blocks, run_chain
from .config import Comparison, SamplerSetting
from .contracts import hyperparameters, traits
from .crossing import Point, Snapshot, budget_ladder, replay
from .ess import Tracer
from .oracle import CostWeights, Counts, ScoreOracle
from .plots import samples_figure
from .rng import run_generator, stream_of
from .tracking import Tracker

BOUND_FACTOR = 1e6  # chains this many times outside the target and the start have diverged (see chain.py)
BURN_IN = 0.5  # the first half of a run's traced draws is discarded before its effective sample size
TARGET_INIT_OFFSET = 2**32  # initial chains drawn from the target use seed + this: apart from the reference's


@dataclass
class Setup:
    """What every child run of a comparison shares."""

    comp: Comparison
    tracker: Tracker
    experiment_id: str
    parent: str
    source: Any
    target: Any  # moved to the run's device and dtype
    reference: torch.Tensor
    weights: CostWeights
    checkpoints: list[float]
    device: torch.device
    dtype: torch.dtype
    tags: dict
    study: Study
    order: int = 0  # children are numbered, so a report rebuilt from MLflow lists them in the same order


def initial_chains(comp: Comparison, target, seed: int, device, dtype, *, host: bool = False) -> torch.Tensor:
    """The chains every sampler starts from for this seed: drawn on the CPU (identical on any device),
    or from the target (on ``device``) with its own generator, a block of ``comp.block`` chains at a time.
    With ``host`` they are returned on the CPU, for a run in blocks: all of them never sit on the device."""
    init = comp.init
    home = torch.device("cpu") if host else device
    if init.distribution == "target":
        g = torch.Generator(device).manual_seed(TARGET_INIT_OFFSET + seed)
        sizes = [min(comp.block, comp.chains - i) for i in range(0, comp.chains, comp.block)]
        return torch.cat([target.sample(n, g).to(home, dtype) for n in sizes])
    g = torch.Generator().manual_seed(seed)
    shape = (comp.chains, *comp.target.event_shape)
    if init.distribution == "gaussian":
        x = init.center + init.scale * torch.randn(shape, generator=g, dtype=torch.float64)
    else:
        x = init.center + init.scale * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1)
    return x.to(device=home, dtype=dtype)


def open_child(setup: Setup, setting: SamplerSetting, seed: int, role: str) -> RunRecord:
    """Start the child's MLflow run (named, tagged, its params written) and number it. An executor opens
    every run itself, so a task that dies on another machine still leaves a run to mark FAILED."""
    comp, tracker, sampler = setup.comp, setup.tracker, setting.make()
    run_id = tracker.start_run(
        # The UI cuts names at ~15 characters: role and seed first keep tuning and evaluation runs apart.
        setup.experiment_id, f"{'tune' if role == 'tuning' else 'eval'} {seed} {setting.label}",
        parent=setup.parent,
        tags={**setup.tags, "scorelab.sampler": setting.name, "scorelab.setting": setting.label,
              "scorelab.seed": seed, "scorelab.role": role, "scorelab.order": setup.order},
        params={"sampler": setting.name, "plugin": setting.plugin, "setting": setting.label, "role": role,
                "seed": seed, "budget": comp.budget,
                "chains": comp.chains, "chain_block": comp.block,  # chain_block < chains: run in blocks
                "rng": stream_of(comp.rng, sampler), **hyperparameters(sampler)},
    )
    setup.order += 1
    return RunRecord(setting.label, setting.name, seed, role, "FINISHED", run_id)


def run_child(setup: Setup, setting: SamplerSetting, record: RunRecord, progress=None) -> RunRecord:
    """Sample and log the child whose run :func:`open_child` started; a sampler that raises fails this run only."""
    tracker, run_id = setup.tracker, record.run_id
    try:
        _sample(setup, setting, record.seed, record)
    except KeyboardInterrupt:
        tracker.set_tags(run_id, {"scorelab.status": "killed"})
        tracker.end(run_id, "KILLED")
        raise
    except Exception as exc:  # a broken sampler fails its own run, not the comparison
        fail_child(tracker, record, traceback.format_exc(), f"{type(exc).__name__}: {exc}", progress)
        return record
    tracker.end(run_id, record.status)
    if progress is not None:
        progress.update(1)
    return record


def fail_child(tracker: Tracker, record: RunRecord, trace: str, error: str, progress=None) -> None:
    """End the child's run FAILED, its traceback an artifact (error.txt) and its error a tag."""
    record.status = "FAILED"
    tracker.log_text(record.run_id, trace, "error.txt")
    tracker.set_tags(record.run_id, {"scorelab.status": "failed", "scorelab.error": error[:5000]})
    tracker.end(record.run_id, "FAILED")
    if progress is not None:
        progress.update(1)


def _calls(counts: Counts) -> dict[str, float]:
    return {f"calls.{k}": v for k, v in dataclasses.asdict(counts).items()}


class _Measure:
    """Evaluates and logs metrics for one child run, and keeps what the crossing refinement needs."""

    def __init__(self, setup: Setup, record: RunRecord, metrics: dict[str, Any]):
        self.setup, self.record, self.metrics = setup, record, metrics
        self.primary = setup.comp.primary
        self.threshold = setup.study.threshold(self.primary)
        self.snapshot: Snapshot | None = None
        self.exact: list[tuple[float, float]] = []  # (unrounded cost, primary value) at each checkpoint

    def value(self, name: str, x: torch.Tensor) -> float:
        return float(self.setup.comp.metrics[name](x, self.setup.reference, self.setup.target))

    def log(self, cost: float, values: dict[str, float], counts: Counts, extra: dict | None = None) -> None:
        step = round(cost)
        for name, v in values.items():
            self.record.curves.setdefault(name, []).append((step, v))
        self.record.counts[step] = dataclasses.astuple(counts)
        self.setup.tracker.log_metrics(self.record.run_id, {**values, **_calls(counts), **(extra or {})}, step=step)

    def checkpoint(self, cp: Checkpoint, generator: torch.Generator | None) -> None:
        values = {name: self.value(name, cp.state.x) for name in self.metrics}
        self.record.wall.append((round(cp.cost), cp.wall_time))
        self.log(cp.cost, values, cp.counts, {**{f"info.{k}": v for k, v in cp.info.items()},
                                              "wall_time_s": cp.wall_time})
        self.exact.append((cp.cost, values[self.primary]))
        if generator is not None and self.threshold is not None and not values[self.primary] <= self.threshold:
            self.snapshot = Snapshot.take(cp, generator)  # the last one above it

    def merge(self, points: list[Point]) -> None:
        """Add refinement points to the primary curve (and MLflow), in cost order."""
        for cost, value, counts in points:
            self.log(cost, {self.primary: value}, counts)
        self.record.curves[self.primary].sort(key=lambda p: p[0])


def _sample(setup: Setup, setting: SamplerSetting, seed: int, record: RunRecord) -> None:
    comp, tracker, run_id = setup.comp, setup.tracker, record.run_id
    # Tuning chooses by the primary metric alone, so tuning runs spend no time on the others.
    metrics = comp.metrics if record.role == "evaluation" else {comp.primary: comp.metrics[comp.primary]}
    measure = _Measure(setup, record, metrics)
    sampler = setting.make()  # its traits; each run makes its own
    ladder = traits("sampler", sampler).budget_bound  # its cost to quality is found by a budget ladder
    record.budget_points = ladder
    tracker.set_tags(run_id, {"scorelab.curve": "budgets" if ladder else "checkpoints"})
    blocked = comp.blocked  # no one run to snapshot or trace: see the module docstring
    x0 = initial_chains(comp, setup.target, seed, setup.device, setup.dtype, host=blocked)
    bound = BOUND_FACTOR * max(1.0, float(x0.abs().max()), float(setup.reference.abs().max()))
    generator = run_generator(comp.rng, sampler, setup.device, seed)
    traced = not ladder and not blocked and record.role == "evaluation"
    tracer = Tracer(x0[0].numel(), seed=seed, device=setup.device, dtype=x0.dtype) if traced else None

    chain = _run(setup, setting, x0, comp.budget, generator, [] if ladder else setup.checkpoints,
                 lambda cp: measure.checkpoint(cp, None if ladder or blocked else generator),
                 bound=bound, trace=tracer)
    record.cost, record.diverged_at = chain.cost, chain.diverged_at
    final = {"cost": chain.cost, "steps": chain.steps, "sampling_seconds": chain.wall_time,
             "compile_seconds": chain.compile_seconds,
             "diverged": float(chain.diverged_at is not None), **_calls(chain.counts)}
    if chain.diverged_at is not None:
        final["diverged_at_cost"] = chain.diverged_at
    else:
        resolution = _refine(setup, setting, seed, x0, measure, ladder)
        tracker.set_tags(run_id, {"scorelab.resolution": resolution})
        if tracer is not None and len(tracer) >= 20:  # the second half of the run, its cost about half the total
            record.ess = 1000 * tracer.ess(start_fraction=BURN_IN) / max(chain.cost * (1 - BURN_IN), 1e-12)
            final["ess_per_1k_cost"] = record.ess
    tracker.log_metrics(run_id, final, step=round(chain.cost))
    tracker.set_tags(run_id, {"scorelab.status": "diverged" if chain.diverged_at is not None else "ok"})
    if chain.diverged_at is None and record.role == "evaluation":  # tuning runs are judged by numbers alone
        title = f"{setting.label} seed={seed}"
        tracker.log_figure(run_id, samples_figure(chain.state.x, setup.reference, title), "samples.png")


def _run(setup: Setup, setting: SamplerSetting, x0: torch.Tensor, budget: float, generator: torch.Generator,
         checkpoints=(), callback=None, *, bound: float = math.inf, trace: Tracer | None = None) -> ChainResult:
    """One run of ``setting`` from ``x0``: all chains at once, or in blocks of ``comp.block`` when they do
    not fit the device together (``x0`` then on the host, and ``trace`` unused: the caller passes none)."""
    comp = setup.comp
    if comp.blocked:
        return run_blocks(setting.make, lambda: ScoreOracle(setup.source, setup.weights), x0, comp.block, budget,
                          generator, checkpoints, callback, bound=bound, compile=comp.compile)
    return run_chain(setting.make(), ScoreOracle(setup.source, setup.weights), x0, budget, generator, checkpoints,
                     callback, bound=bound, trace=trace, compile=comp.compile)


def _refine(setup: Setup, setting: SamplerSetting, seed: int, x0: torch.Tensor, measure: _Measure,
            ladder: bool) -> str:
    """Resolve the primary metric's crossing to ``cost_resolution``; returns how it was resolved."""
    comp, study = setup.comp, setup.study
    curve = measure.record.curves.get(comp.primary, [])
    reached = study.cost_to_quality(measure.record, comp.primary)
    if measure.threshold is None or not math.isfinite(reached) or reached == curve[0][0]:
        return "not needed"
    metric = comp.metrics[comp.primary]

    def value(x):
        return float(metric(x, setup.reference, setup.target))

    if ladder:
        def run_at(budget: float) -> Point | None:
            try:
                chain = _run(setup, setting, x0, budget, run_generator(comp.rng, setting.make(), setup.device, seed))
            except ValueError:  # the sampler cannot run at so small a budget
                return None
            return chain.cost, (math.nan if chain.diverged_at is not None else value(chain.state.x)), chain.counts

        smallest = setup.checkpoints[0] if setup.checkpoints else comp.budget / 100
        measure.merge(budget_ladder(run_at, comp.budget, measure.threshold, smallest=smallest,
                                    resolution=comp.cost_resolution))
        return f"budget ladder, {comp.cost_resolution:.0%}"
    if comp.blocked:  # no snapshot was taken: the blocks' states were never one state
        return "checkpoint (run in blocks: no replay)"
    snapshot = measure.snapshot
    until = next(((c, v) for c, v in measure.exact if snapshot is not None and c > snapshot.cost), None)
    if snapshot is None or until is None or round(until[0]) != reached:
        return "checkpoint"
    points = replay(setting.make(), setup.source, setup.weights, snapshot, until, value, comp.cost_resolution,
                    comp.compile)
    if points is None:
        return "checkpoint (the replay did not reproduce the run)"
    measure.merge(points)
    return f"replay, {comp.cost_resolution:.0%}"
